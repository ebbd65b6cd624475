"""The model registry on a real Delta table, with the project's two real bundles (v2, v3):
registration pins the manifest, roles resolve to versions, promote clears a promoted challenger,
rollback returns to the previous champion, and the CLI says what it did."""
from __future__ import annotations

import json
import shutil

import pytest

from jobs.cli import main
from jobs.model_registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError
from jobs.storage import TablesLocation
from models import DEFAULT_BUNDLE_PATH

V2 = DEFAULT_BUNDLE_PATH.parent / "v2"


def test_roles_resolve_to_registered_pinned_versions(tmp_path) -> None:
    from models.bundle import sha256_of

    registry = ModelRegistry(TablesLocation.of(tmp_path))
    assert registry.resolve(CHAMPION) is None and registry.versions() == {}
    v2 = registry.register(V2, "alice", "first model")
    v3 = registry.register(DEFAULT_BUNDLE_PATH, "alice")
    assert (v2.version, v3.version) == ("v2", "v3")
    assert v3.manifest_sha256 == sha256_of(DEFAULT_BUNDLE_PATH / "manifest.json")
    assert v3.metrics["held_out_roc_auc"] == pytest.approx(json.loads(
        (DEFAULT_BUNDLE_PATH / "evaluation.json").read_text())["binary"]["ensemble"]["roc_auc"])
    assert v3.provenance["training_rows_sha256"]
    registry.promote("v2", "alice")
    registry.set_alias(CHALLENGER, "v3", "bob", "try the new one")
    assert registry.aliases() == {CHAMPION: "v2", CHALLENGER: "v3"}
    registry.promote("v3", "bob")
    assert registry.aliases() == {CHAMPION: "v3"}  # a promoted challenger is no longer the challenger
    assert registry.resolve(CHAMPION).bundle == str(DEFAULT_BUNDLE_PATH)
    assert registry.rollback("carol", "too many alerts") == "v2"
    assert registry.resolve(CHAMPION).version == "v2"
    assert registry.rollback("carol") == "v3"  # back again
    whos = [(r["action"], r["role"], r["version"], r["who"]) for r in registry.rows()]
    assert whos[-1] == ("alias", CHAMPION, "v3", "carol")


def test_what_the_registry_refuses(tmp_path) -> None:
    registry = ModelRegistry(TablesLocation.of(tmp_path / "tables"))
    with pytest.raises(RegistryError, match="not registered"):
        registry.promote("v3", "alice")
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback("alice")
    with pytest.raises(RegistryError, match="not a bundle"):
        registry.register(tmp_path, "alice")
    registry.register(DEFAULT_BUNDLE_PATH, "alice")
    with pytest.raises(RegistryError, match="role"):
        registry.set_alias("boss", "v3", "alice")
    # the same version with other contents: refused (a retrained bundle needs a new version)
    changed = tmp_path / "v3-changed"
    shutil.copytree(DEFAULT_BUNDLE_PATH, changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["target_fpr"] = 0.02
    (changed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="another manifest"):
        registry.register(changed, "mallory")


def test_the_models_command(tmp_path, capsys) -> None:
    tables = str(tmp_path)
    assert main(["models", "register", str(V2), "--tables", tables, "--as", "champion", "--who", "alice"]) == 0
    assert main(["models", "register", str(DEFAULT_BUNDLE_PATH), "--tables", tables, "--as", "challenger"]) == 0
    assert main(["models", "list", "--tables", tables, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 2)[-1])
    assert {(r["version"], tuple(r["roles"])) for r in listed} == {("v2", (CHAMPION,)), ("v3", (CHALLENGER,))}
    assert main(["models", "promote", "v3", "--tables", tables, "--reason", "fewer false positives"]) == 0
    assert main(["models", "rollback", "--tables", tables]) == 0
    assert main(["models", "history", "--tables", tables]) == 0
    out = capsys.readouterr().out
    assert "champion: v3" in out and "champion: v2 (rolled back)" in out and "fewer false positives" in out
    assert main(["models", "promote", "v9", "--tables", tables]) == 2  # a clear error, not a traceback

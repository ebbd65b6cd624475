"""The model registry: the bundles a site has registered, with their metrics and provenance, and an
alias per role (``champion``: the model whose verdicts make alerts; ``challenger``: one scored beside
it in shadow). Kept as the append-only ``model_registry`` Delta table beside the job's other tables
(a local path or an object store, :class:`jobs.storage.TablesLocation`): every registration and
every alias change is a row with who, when and why, so the table is also the audit trail, and a
rollback is a look back at it. No server to run, and the streaming job's driver reads it with
delta-rs at each micro-batch (small: a row per change).

A registered version is pinned: the sha256 of its ``manifest.json`` (which pins every model file)
is recorded at registration, and the stream refuses a bundle that no longer matches it.

The rules: the latest alias row of a role wins (``version`` null: the role is cleared); ``promote``
makes a version champion and, when it was the challenger, clears that role; ``rollback`` makes the
champion before the current one champion again.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from jobs.errors import UserError
from schemas.tables import MODEL_REGISTRY, TABLES

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

CHAMPION: Final[str] = "champion"
CHALLENGER: Final[str] = "challenger"
ROLES: Final[tuple[str, ...]] = (CHAMPION, CHALLENGER)
REGISTER, ALIAS = "register", "alias"


class RegistryError(UserError):
    """A version, role or bundle the registry cannot use; the message says what to give instead."""


@dataclass(frozen=True)
class RegisteredModel:
    """A registered bundle: its version, where it is (as the Spark workers see it) and its pin."""

    version: str
    bundle: str
    manifest_sha256: str
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    registered_at: datetime
    registered_by: str


def bundle_metrics(manifest: dict[str, Any], bundle_dir: Path) -> dict[str, Any]:
    """What the bundle's own evaluation says (held-out figures when ``evaluation.json`` is there,
    else the training-time validation figures of its manifest), for ``iomt-ad models list``."""
    evaluation = bundle_dir / "evaluation.json"
    metrics: dict[str, Any] = {"target_fpr": manifest.get("target_fpr"),
                               "threshold": manifest.get("ensemble", {}).get("threshold", {}).get("value")}
    if evaluation.exists():
        report = json.loads(evaluation.read_text())
        ensemble = report.get("binary", {}).get("ensemble", {})
        metrics.update({f"held_out_{key}": ensemble[key] for key in ("roc_auc", "tpr", "fpr", "f1") if key in ensemble})
        metrics["held_out_rows"] = report.get("n_rows")
        metrics["held_out_class_macro_f1"] = report.get("multiclass", {}).get("macro_f1")
    else:
        metrics["training_metrics"] = manifest.get("training_metrics", {})
    return metrics


def bundle_provenance(manifest: dict[str, Any]) -> dict[str, Any]:
    """Where the bundle came from: its training files, split seed, training rows' fingerprint,
    library versions and the analysts' labels it learnt from (all from its manifest)."""
    return {"schema_version": manifest.get("schema_version"), "seed": manifest.get("seed"),
            "training_files": len(manifest.get("training_files", [])),
            "training_rows_sha256": manifest.get("files", {}).get("training_rows.npz"),
            "feature_schema_hash": manifest.get("feature_schema_hash"),
            "library_versions": manifest.get("library_versions", {}),
            # analysts' labelled records it learnt from, per part (iomt-ad train --feedback)
            **({"feedback": manifest["feedback"]["parts"]} if "feedback" in manifest else {})}


class ModelRegistry:
    """The ``model_registry`` table under ``tables``."""

    def __init__(self, tables: "TablesLocation") -> None:
        self.tables = tables.resolved()
        self.options = self.tables.storage_options()
        self._table = None

    # reading ----------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Every registry row, oldest first (none before the first registration)."""
        from deltalake import DeltaTable

        uri = self.tables.uri(MODEL_REGISTRY)
        if self._table is None:
            if not DeltaTable.is_deltatable(uri, storage_options=self.options):
                return []
            self._table = DeltaTable(uri, storage_options=self.options)
        else:
            self._table.update_incremental()
        rows = self._table.to_pyarrow_dataset().to_table().to_pylist()
        return sorted(rows, key=lambda r: (r["at"], r["seq"]))

    def versions(self) -> dict[str, RegisteredModel]:
        """Each registered version (a version registered again: its latest registration)."""
        found: dict[str, RegisteredModel] = {}
        for row in self.rows():
            if row["action"] == REGISTER:
                found[row["version"]] = RegisteredModel(
                    row["version"], row["bundle"], row["manifest_sha256"], json.loads(row["metrics"] or "{}"),
                    json.loads(row["provenance"] or "{}"), row["at"], row["who"])
        return found

    def aliases(self) -> dict[str, str]:
        """role -> version, for the roles that are set."""
        current: dict[str, str | None] = {}
        for row in self.rows():
            if row["action"] == ALIAS:
                current[row["role"]] = row["version"]
        return {role: version for role, version in current.items() if version is not None}

    def resolve(self, role: str) -> RegisteredModel | None:
        """The version ``role`` names, or None when the role is not set."""
        version = self.aliases().get(role)
        return None if version is None else self.version(version)

    def version(self, version: str) -> RegisteredModel:
        found = self.versions()
        if version not in found:
            raise RegistryError(f"model version {version!r} is not registered (registered: "
                                f"{', '.join(sorted(found)) or 'none'}): `iomt-ad models register BUNDLE_DIR` first")
        return found[version]

    def champions(self) -> list[str]:
        """The champion's versions in the order they were made champion (repeats kept)."""
        return [r["version"] for r in self.rows() if r["action"] == ALIAS and r["role"] == CHAMPION and r["version"]]

    # writing ----------------------------------------------------------------------------------
    def _append(self, rows: list[dict[str, Any]]) -> None:
        from deltalake import write_deltalake

        spec = TABLES[MODEL_REGISTRY]
        table = pa.Table.from_pylist([{name: row.get(name) for name in spec.column_names} for row in rows],
                                     schema=spec.arrow_schema())
        write_deltalake(self.tables.uri(MODEL_REGISTRY), table, mode="append", schema_mode="merge",
                        storage_options=self.options)

    def _row(self, action: str, who: str, reason: str | None, seq: int = 0, **values: Any) -> dict[str, Any]:
        return {"event_id": uuid.uuid4().hex, "at": datetime.now(timezone.utc), "seq": seq, "action": action,
                "who": who, "reason": reason, **values}

    def register(self, bundle: str | Path, who: str, reason: str | None = None,
                 bundle_uri: str | None = None) -> RegisteredModel:
        """Register the bundle at ``bundle`` (checked as the stream checks it: files pinned by the
        manifest, feature schema): its version, pin, metrics and provenance. ``bundle_uri``: where
        the Spark workers find it, when that differs from the path read here."""
        from models.bundle import BundleError, check_bundle

        path = Path(bundle)
        try:
            manifest, sha = check_bundle(path)
        except (BundleError, OSError) as exc:
            raise RegistryError(f"{path}: not a bundle the stream could load: {exc}") from exc
        version = str(manifest["model_version"])
        known = self.versions().get(version)
        if known is not None and known.manifest_sha256 != sha:
            raise RegistryError(f"version {version} is registered with another manifest (sha256 "
                                f"{known.manifest_sha256[:12]}..., this one {sha[:12]}...): give the retrained "
                                "bundle a new model_version")
        self._append([self._row(REGISTER, who, reason, version=version, bundle=bundle_uri or str(path),
                                manifest_sha256=sha, metrics=json.dumps(bundle_metrics(manifest, path), default=str),
                                provenance=json.dumps(bundle_provenance(manifest), default=str))])
        log.info("registered model version %s (%s, manifest sha256 %s)", version, bundle_uri or path, sha)
        return self.version(version)

    def set_alias(self, role: str, version: str | None, who: str, reason: str | None = None) -> None:
        """Point ``role`` at ``version`` (None: clear the role)."""
        if role not in ROLES:
            raise RegistryError(f"role {role!r}: use one of {', '.join(ROLES)}")
        if version is not None:
            self.version(version)  # raises when it is not registered
        self._append([self._row(ALIAS, who, reason, role=role, version=version)])

    def promote(self, version: str, who: str, reason: str | None = None) -> None:
        """Make ``version`` the champion; when it was the challenger, the challenger role is cleared
        in the same commit (the stream never scores one version as both)."""
        self.version(version)
        aliases = self.aliases()
        if aliases.get(CHAMPION) == version:
            raise RegistryError(f"version {version} is already the champion")
        rows = [self._row(ALIAS, who, reason, role=CHAMPION, version=version)]
        if aliases.get(CHALLENGER) == version:
            rows.append(self._row(ALIAS, who, f"promoted to {CHAMPION}", seq=1, role=CHALLENGER, version=None))
        self._append(rows)

    def rollback(self, who: str, reason: str | None = None) -> str:
        """Make the champion before the current one champion again; returns its version."""
        history = self.champions()
        current = self.aliases().get(CHAMPION)
        earlier = [v for v in history[:-1] if v != current] if history else []
        if not earlier:
            raise RegistryError("no earlier champion to roll back to")
        self._append([self._row(ALIAS, who, reason or f"rollback from {current}", role=CHAMPION, version=earlier[-1])])
        return earlier[-1]

"""``iomt-ad dist``: what spark-submit ships — code without bundles, one bundle at the archive's root,
entry points and configurations — built reproducibly. No JVM needed."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from jobs.ops.dist import DistError, build, package_members
from udfs.model_cache import driver_bundle_dir
from tests.helpers.streaming import BUNDLE

REPO = Path(__file__).resolve().parents[2]


def test_dist_contents_and_reproducible_bytes(tmp_path: Path) -> None:
    first = build(tmp_path / "a", BUNDLE)
    second = build(tmp_path / "b", BUNDLE)
    assert first.py_files.read_bytes() == second.py_files.read_bytes()
    assert first.bundle.read_bytes() == second.bundle.read_bytes()

    code = set(zipfile.ZipFile(first.py_files).namelist())
    for module in ("jobs/__init__.py", "jobs/stream/score_stream.py", "jobs/batch/rescore.py", "udfs/spark_udf.py",
                   "udfs/model_cache.py", "schemas/flow_record.py", "models/bundle.py"):
        assert module in code
    assert all(name.endswith(".py") and not name.startswith("models/v") for name in code)

    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    bundle = set(zipfile.ZipFile(first.bundle).namelist())
    assert first.bundle.name == f"bundle-{manifest['model_version']}.zip"
    assert {"manifest.json", *manifest["files"]} <= bundle
    assert all("/" not in name for name in bundle)  # at the root: --archives ...#model gives model/manifest.json

    assert {p.name for p in first.entry_points} == {"score_stream.py", "rescore_batch.py"}
    assert {"local.yaml", "cluster.yaml", "kafka.yaml"} <= {p.name for p in first.conf_dir.iterdir()}
    summary = json.loads((first.out_dir / "dist.json").read_text())
    assert summary["bundle_version"] == manifest["model_version"]
    assert set(summary["files"]) >= {"iomt_ad.zip", first.bundle.name, "conf/cluster.yaml"}


def _project_imports(source: str) -> set[str]:
    """Modules of the project a file imports (at any depth of the file: lazy imports count)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("jobs", "udfs", "schemas", "models")}


def test_the_code_zip_holds_what_the_jobs_import_and_nothing_else(tmp_path: Path) -> None:
    """Follow every import from the two entry points: each module reached is in the zip, and the
    zip holds no module that none of them reaches (the benchmark, Grafana, model tools...)."""
    code = zipfile.ZipFile(build(tmp_path / "d", BUNDLE).py_files)
    names = set(code.namelist())

    def file_of(module: str) -> str | None:
        path = module.replace(".", "/")
        for candidate in (f"{path}.py", f"{path}/__init__.py"):
            if (REPO / candidate).is_file():
                return candidate
        return None  # a name imported from a module, not a module

    reached, todo = set(), ["jobs/stream/score_stream.py", "jobs/batch/rescore.py"]
    while todo:
        current = todo.pop()
        if current in reached:
            continue
        reached.add(current)
        parts = Path(current).parent.parts
        todo += [f"{'/'.join(parts[:i])}/__init__.py" for i in range(1, len(parts) + 1)]
        todo += [f for f in map(file_of, _project_imports((REPO / current).read_text())) if f]
    assert reached <= names, sorted(reached - names)
    unreached = {name for name in names - reached if not name.startswith("jobs/batch/")}  # the other batch jobs
    assert not unreached, f"shipped but never imported by a job: {sorted(unreached)}"
    for never in ("jobs/bench/", "jobs/grafana/", "jobs/model_tools/", "jobs/ops/", "jobs/dashboard/",
                  "jobs/sensor/", "models/training/", "jobs/cli.py"):
        assert not any(name.startswith(never) for name in names), never


def test_a_directory_that_is_not_a_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    with pytest.raises(DistError, match="not a Python package"):
        list(package_members(tmp_path, ["jobs"]))


def test_driver_bundle_dir_keeps_an_existing_path() -> None:
    assert driver_bundle_dir(BUNDLE) == BUNDLE
    assert driver_bundle_dir("no-such-bundle") == Path("no-such-bundle")

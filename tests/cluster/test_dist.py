"""``iomt-ad dist``: what spark-submit ships — code without bundles, one bundle at the archive's root,
entry points and configurations — built reproducibly. No JVM needed."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from jobs.dist import DistError, build, package_members
from udfs.model_cache import driver_bundle_dir
from tests.streaming.helpers import BUNDLE

REPO = Path(__file__).resolve().parents[2]


def test_dist_contents_and_reproducible_bytes(tmp_path: Path) -> None:
    first = build(tmp_path / "a", BUNDLE)
    second = build(tmp_path / "b", BUNDLE)
    assert first.py_files.read_bytes() == second.py_files.read_bytes()
    assert first.bundle.read_bytes() == second.bundle.read_bytes()

    code = set(zipfile.ZipFile(first.py_files).namelist())
    for module in ("jobs/__init__.py", "jobs/score_stream.py", "jobs/rescore_batch.py", "udfs/spark_udf.py",
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


def test_a_directory_that_is_not_a_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    with pytest.raises(DistError, match="not a Python package"):
        list(package_members(tmp_path, ["jobs"]))


def test_driver_bundle_dir_keeps_an_existing_path() -> None:
    assert driver_bundle_dir(BUNDLE) == BUNDLE
    assert driver_bundle_dir("no-such-bundle") == Path("no-such-bundle")

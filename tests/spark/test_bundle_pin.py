"""The stream's bundle pin (stream.model_trust) in Spark: the driver refuses to start a query over a
bundle that is not the pinned one, and a Python worker refuses to score with a bundle rewritten
after the query started (its manifest no longer the pinned one)."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import yaml

from jobs.config import load_config
from models import DEFAULT_BUNDLE_PATH
from models.bundle import MANIFEST, BundlePinError, BundleTrust, UnpickleRefusedError
from schemas.flow_record import FEATURES, column_name

pytestmark = pytest.mark.spark

PINNED = hashlib.sha256((DEFAULT_BUNDLE_PATH / MANIFEST).read_bytes()).hexdigest()


@pytest.fixture()
def bundle(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(DEFAULT_BUNDLE_PATH, target, ignore=shutil.ignore_patterns("evaluation.html"))
    return target


def _config(tmp_path, bundle, **trust):
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump({
        "spark": {"master": "local[2]"},
        "stream": {"source": "files", "files": {"path": str(tmp_path / "in")}, "tables_dir": str(tmp_path / "delta"),
                   "trigger": "availableNow", "model_dir": str(bundle), "model_trust": trust}}))
    return load_config(path)


def test_the_driver_refuses_a_bundle_that_is_not_the_pinned_one(spark, bundle, tmp_path) -> None:
    from jobs.stream.score_stream import start_query

    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["model_version"] = "v3-retrained-by-someone"
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundlePinError, match="stream.model_trust.manifest_sha256"):
        start_query(spark, _config(tmp_path, bundle, manifest_sha256=PINNED))
    assert not spark.streams.active


def test_the_driver_refuses_a_bundle_that_would_be_unpickled(spark, bundle, tmp_path) -> None:
    from jobs.stream.score_stream import start_query

    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.pop("compiled")  # what a writer of the model directory could do
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UnpickleRefusedError, match="stream.model_trust.allow_unpickle"):
        start_query(spark, _config(tmp_path, bundle))


def test_a_worker_refuses_a_bundle_rewritten_after_the_start(spark, bundle) -> None:
    from jobs.transforms import score

    row = {column_name(f): 1.0 for f in FEATURES}
    flows = spark.createDataFrame([row] * 4)
    trust = BundleTrust(manifest_sha256=PINNED, allow_unpickle=False, where="stream.model_trust")
    assert score(flows, str(bundle), trust).count() == 4
    assert all(r.scoring_error is None for r in score(flows, str(bundle), trust).collect())

    (bundle / MANIFEST).write_bytes((bundle / MANIFEST).read_bytes().replace(b'"model_version"', b'"model_version" '))
    with pytest.raises(Exception, match="is not the pinned"):
        score(flows, str(bundle), trust).collect()


def test_the_streams_tasks_refuse_a_bundle_rewritten_after_the_start(bundle) -> None:
    """The stream scores in its sink's tasks (jobs.stream.scoring), not through the UDF: the same pin."""
    import pyarrow as pa

    from jobs.stream.scoring import score_partition

    records = pa.table({column_name(f): [1.0] * 3 for f in FEATURES} | {
        "quarantine_reason": pa.array([None] * 3, pa.string()), "raw_value": pa.array([None] * 3, pa.string()),
        "raw_bytes": pa.array([None] * 3, pa.int32()), "raw_sha256": pa.array([None] * 3, pa.string())})
    trust = BundleTrust(manifest_sha256=PINNED, allow_unpickle=False, where="stream.model_trust")
    assert score_partition(records, str(bundle), 8192, trust=trust).num_rows == 3
    (bundle / MANIFEST).write_bytes((bundle / MANIFEST).read_bytes().replace(b'"model_version"', b'"model_version" '))
    with pytest.raises(Exception, match="is not the pinned"):  # the worker's cached bundle too
        score_partition(records, str(bundle), 8192, trust=trust)

"""Delta tables on a real S3-compatible object store (SeaweedFS on loopback, tests/services/object_store.py):
delta-rs writes and reads them with application transactions, pyarrow writes data files that delta-rs
commits (the streaming job's split: executors write, the driver commits), and Spark reads and writes
them through S3A (hadoop-aws and the AWS SDK v2 modules from conf/jars/pom.xml)."""
from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

pytestmark = [pytest.mark.objectstore]

APP_ID = "iomt-ad-test"


def _rows(start: int, count: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + count), pa.int64()),
                     "device": pa.array([f"dev-{i % 3}" for i in range(start, start + count)]),
                     "score": pa.array([i / 10 for i in range(start, start + count)], pa.float64())})


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_delta_rs_appends_with_app_transactions_and_reads_back(object_store) -> None:
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

    name = _unique("delta-rs")
    uri, options = object_store.uri(name), object_store.storage_options()
    for batch_id, rows in enumerate([_rows(0, 5), _rows(5, 4)]):
        write_deltalake(uri, rows, mode="append", partition_by=["device"], storage_options=options,
                        commit_properties=CommitProperties(
                            app_transactions=[Transaction(app_id=APP_ID, version=batch_id)]))

    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    assert table.transaction_version(APP_ID) == 1
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == list(range(9))
    # the log and the partitioned data files are objects in the bucket, not files on this machine
    keys = object_store.keys(f"{name}/")
    assert f"{name}/_delta_log/00000000000000000000.json" in keys
    assert f"{name}/_delta_log/00000000000000000001.json" in keys
    assert any(key.startswith(f"{name}/device=dev-0/") and key.endswith(".parquet") for key in keys)


def test_a_delta_rs_commit_never_overwrites_another_writers_commit(object_store) -> None:
    """Concurrent writers are safe without a locking provider: delta-rs writes a commit with a
    conditional PUT (``If-None-Match: *``) that the store refuses when the version exists, and then
    retries at the next version. A writer whose table state is one commit behind shows it."""
    import json

    from deltalake import DeltaTable, write_deltalake

    name = _unique("race")
    uri, options = object_store.uri(name), object_store.storage_options()
    write_deltalake(uri, _rows(0, 2), storage_options=options)
    behind = DeltaTable(uri, storage_options=options)  # at version 0
    theirs = (json.dumps({"commitInfo": {"timestamp": 1, "operation": "ANOTHER WRITER"}}) + "\n").encode()
    assert object_store.request("PUT", f"/{object_store.bucket}/{name}/_delta_log/00000000000000000001.json",
                                theirs)[0] == 200

    write_deltalake(behind, _rows(2, 3), mode="append")

    assert object_store.request("GET", f"/{object_store.bucket}/{name}/_delta_log/00000000000000000001.json") \
        == (200, theirs)
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 2
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == list(range(5))


def test_pyarrow_writes_data_files_that_delta_rs_commits(object_store) -> None:
    """The streaming job's split: Parquet files written with pyarrow (on executors), then committed
    by delta-rs (on the driver) with the batch's transaction."""
    import pyarrow.parquet as pq
    from deltalake import CommitProperties, DeltaTable, Schema, Transaction
    from deltalake.transaction import AddAction, create_table_with_add_actions
    from pyarrow import fs

    name = _unique("pyarrow-files")
    options = object_store.storage_options()
    filesystem = fs.S3FileSystem(endpoint_override=options["AWS_ENDPOINT_URL"], scheme="http",
                                 region=options["AWS_REGION"], access_key=options["AWS_ACCESS_KEY_ID"],
                                 secret_key=options["AWS_SECRET_ACCESS_KEY"])
    rows = _rows(0, 6)
    relative = f"part-00000000-{uuid.uuid4().hex}.snappy.parquet"
    pq.write_table(rows, f"{object_store.bucket}/{name}/{relative}", filesystem=filesystem, compression="snappy")
    size = filesystem.get_file_info(f"{object_store.bucket}/{name}/{relative}").size

    uri = object_store.uri(name)
    create_table_with_add_actions(
        uri, Schema.from_arrow(rows.schema), [AddAction(relative, size, {}, 0, True, '{"numRecords": 6}')],
        mode="append", storage_options=options,
        commit_properties=CommitProperties(app_transactions=[Transaction(app_id=APP_ID, version=0)]))

    table = DeltaTable(uri, storage_options=options)
    assert table.transaction_version(APP_ID) == 0
    assert table.to_pyarrow_table().sort_by("id").equals(rows)


@pytest.fixture(scope="module")
def s3a_spark(spark, object_store):
    """The session's SparkSession, told at run time where the store is. S3A's settings reach Delta's
    reads and writes through the session's SQL configuration (plain ``fs.s3a.*`` keys; the
    ``spark.hadoop.`` forms of ``spark_conf()`` apply only when a session is built); the credentials
    come from the JVM's environment (tests/conftest.py)."""
    settings = object_store.hadoop_conf()
    for key, value in settings.items():
        spark.conf.set(key, value)
    yield spark
    for key in settings:
        spark.conf.unset(key)


@pytest.mark.spark
def test_spark_reads_a_table_delta_rs_wrote(s3a_spark, object_store) -> None:
    from deltalake import CommitProperties, Transaction, write_deltalake

    name = _unique("from-delta-rs")
    rows = _rows(0, 7)
    write_deltalake(object_store.uri(name), rows, storage_options=object_store.storage_options(),
                    commit_properties=CommitProperties(app_transactions=[Transaction(app_id=APP_ID, version=0)]))

    frame = s3a_spark.read.format("delta").load(object_store.uri(name, scheme="s3a"))
    assert sorted((r.id, r.device, r.score) for r in frame.collect()) == \
        sorted(zip(*(rows.column(c).to_pylist() for c in ("id", "device", "score"))))


@pytest.mark.spark
def test_spark_writes_a_table_delta_rs_reads(s3a_spark, object_store) -> None:
    from deltalake import DeltaTable

    name = _unique("from-spark")
    path = object_store.uri(name, scheme="s3a")
    first = s3a_spark.createDataFrame(_rows(0, 5).to_pandas())
    first.write.format("delta").partitionBy("device").option("txnAppId", APP_ID).option("txnVersion", 0).save(path)
    s3a_spark.createDataFrame(_rows(5, 3).to_pandas()).write.format("delta").mode("append") \
        .option("txnAppId", APP_ID).option("txnVersion", 1).save(path)
    # a replayed batch: Delta skips it by its transaction
    s3a_spark.createDataFrame(_rows(5, 3).to_pandas()).write.format("delta").mode("append") \
        .option("txnAppId", APP_ID).option("txnVersion", 1).save(path)

    table = DeltaTable(object_store.uri(name), storage_options=object_store.storage_options())
    assert table.version() == 1
    assert table.transaction_version(APP_ID) == 1
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == list(range(8))
    assert f"{name}/_delta_log/00000000000000000001.json" in object_store.keys(f"{name}/")

import math

import pytest
from pyspark.sql import functions as F

from jobs.datasets import load_flows_pandas, load_flows_spark
from schemas.classes import CLASSES
from schemas.csv_layout import CsvLayoutError
from schemas.flow_record import FEATURES

pytestmark = pytest.mark.spark


def test_spark_reader_loads_every_shared_file_with_its_class(spark, shared_data) -> None:
    directory = shared_data / "ciciomt2024"
    flows = load_flows_spark(spark, [directory])
    counts = {row["source_file"]: (row["label"], row["n"])
              for row in flows.groupBy("source_file", "label").agg(F.count("*").alias("n")).collect()}
    for path in sorted(directory.glob("*.csv")):
        with path.open() as handle:
            expected_rows = sum(1 for _ in handle) - 1
        label, n = counts[path.name]
        assert n == expected_rows, path.name
    assert {label for label, _ in counts.values()} == set(CLASSES)
    assert flows.columns[: len(FEATURES)] == list(FEATURES)


def test_spark_reader_keeps_inf_and_nulls_like_the_pandas_reader(spark, sample_dir) -> None:
    files = [sample_dir / "Recon-OS_Scan_test.pcap.csv", sample_dir / "ARP_Spoofing_train.pcap.csv"]
    expected = load_flows_pandas(files)
    flows = load_flows_spark(spark, files)
    inf_rows = flows.filter(F.col("Rate") == float("inf")).count()
    assert inf_rows == int((expected["Rate"] == math.inf).sum())
    assert inf_rows > 0
    assert flows.filter(F.col("Std").isNull()).count() == int(expected["Std"].isna().sum())
    totals = flows.agg(*[F.sum(F.col(f"`{name}`")).alias(name) for name in ("Header_Length", "Tot sum", "IAT")]).first()
    for name in ("Header_Length", "Tot sum", "IAT"):
        assert totals[name] == pytest.approx(expected[name].sum(), rel=1e-9)


def test_spark_reader_refuses_the_original_release(spark, shared_data) -> None:
    with pytest.raises(CsvLayoutError, match="45-feature"):
        load_flows_spark(spark, [shared_data / "ciciomt2024-original-release"])


def test_delta_round_trip_uses_the_delta_jars(spark, tmp_path) -> None:
    path = str(tmp_path / "delta_table")
    spark.range(5).withColumn("label", F.lit("Benign")).write.format("delta").save(path)
    spark.range(5, 8).withColumn("label", F.lit("DoS-TCP")).write.format("delta").mode("append").save(path)
    table = spark.read.format("delta").load(path)
    assert table.count() == 8
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert len(history) == 2

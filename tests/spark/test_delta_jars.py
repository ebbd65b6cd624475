"""The Delta jars fetched by make setup are on the test session's classpath."""
import pytest
from pyspark.sql import functions as F

pytestmark = pytest.mark.spark


def test_delta_round_trip_uses_the_delta_jars(spark, tmp_path) -> None:
    path = str(tmp_path / "delta_table")
    spark.range(5).withColumn("label", F.lit("Benign")).write.format("delta").save(path)
    spark.range(5, 8).withColumn("label", F.lit("DoS-TCP")).write.format("delta").mode("append").save(path)
    table = spark.read.format("delta").load(path)
    assert table.count() == 8
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert len(history) == 2

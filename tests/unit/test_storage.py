"""Where the tables live: paths and object store URIs, and how each reader names them."""
from __future__ import annotations

from pathlib import Path

import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.storage import StorageConfig, StorageError, TablesLocation

STORE = StorageConfig(endpoint="http://127.0.0.1:8333", allow_http=True, single_writer=True,
                      access_key_env="TEST_STORE_KEY", secret_key_env="TEST_STORE_SECRET")


def test_a_relative_path_is_made_absolute_and_stays_local(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    location = TablesLocation.of("var/delta")
    assert location.is_local and location.root == str(tmp_path.resolve() / "var" / "delta")
    assert location.uri("alerts") == location.spark_uri("alerts") == str(tmp_path.resolve() / "var/delta/alerts")
    assert location.storage_options() is None and location.spark_conf() == {}


def test_s3_and_s3a_name_the_same_place_and_spark_reads_through_s3a() -> None:
    for text in ("s3://hospital-ad/iomt/tables/", "s3a://hospital-ad/iomt/tables"):
        location = TablesLocation.of(text, STORE)
        assert not location.is_local
        assert location.uri("flows_scored") == "s3://hospital-ad/iomt/tables/flows_scored"
        assert location.spark_uri("flows_scored") == "s3a://hospital-ad/iomt/tables/flows_scored"
    assert TablesLocation.of("s3://bucket").uri("alerts") == "s3://bucket/alerts"


def test_unsupported_schemes_and_a_missing_bucket_say_what_is_supported() -> None:
    with pytest.raises(StorageError, match="abfss:// is not supported"):
        TablesLocation.of("abfss://tables@account.dfs.core.windows.net/iomt")
    with pytest.raises(StorageError, match="name the bucket"):
        TablesLocation.of("s3:///tables")
    with pytest.raises(ConfigError, match="gs:// is not supported"):
        config_from_mapping({"stream": {"tables_dir": "gs://bucket/tables"}})


def test_credentials_come_from_the_environment_never_from_the_configuration(monkeypatch) -> None:
    monkeypatch.delenv("TEST_STORE_KEY", raising=False)
    monkeypatch.delenv("TEST_STORE_SECRET", raising=False)
    location = TablesLocation.of("s3://bucket/tables", STORE)
    with pytest.raises(StorageError, match="TEST_STORE_KEY and TEST_STORE_SECRET"):
        location.storage_options()
    monkeypatch.setenv("TEST_STORE_KEY", "key-id")
    monkeypatch.setenv("TEST_STORE_SECRET", "key-secret")
    options = location.storage_options()
    assert options == {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "key-id", "AWS_SECRET_ACCESS_KEY": "key-secret",
                       "AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_ALLOW_HTTP": "true",
                       "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    resolved = location.resolved()
    assert "key-secret" not in repr(resolved)  # never in a log line
    assert "key-secret" not in str(location.spark_conf())
    with pytest.raises(ConfigError, match="unknown keys"):
        config_from_mapping({"stream": {"storage": {"secret_key": "inline"}}})


def test_credentials_from_files(tmp_path, monkeypatch) -> None:
    (tmp_path / "id").write_text("file-id\n")
    (tmp_path / "secret").write_text("file-secret\n")
    storage = StorageConfig(access_key_env=None, secret_key_env=None, access_key_file=str(tmp_path / "id"),
                            secret_key_file=str(tmp_path / "secret"))
    options = TablesLocation.of("s3://bucket/t", storage).storage_options()
    assert (options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"]) == ("file-id", "file-secret")


def test_a_plain_http_endpoint_must_be_allowed(monkeypatch) -> None:
    monkeypatch.setenv("TEST_STORE_KEY", "k")
    monkeypatch.setenv("TEST_STORE_SECRET", "s")
    refused = StorageConfig(endpoint="http://store:8333", access_key_env="TEST_STORE_KEY",
                            secret_key_env="TEST_STORE_SECRET")
    with pytest.raises(StorageError, match="allow_http"):
        TablesLocation.of("s3://bucket/t", refused).filesystem()


def test_the_configuration_takes_a_uri_and_the_checkpoint_follows_the_tables(tmp_path) -> None:
    config = config_from_mapping({"stream": {
        "tables_dir": "s3://hospital-ad/tables",
        "storage": {"endpoint": "https://objects.hospital.internal", "region": "eu-west-1",
                    "options": {"AWS_S3_ADDRESSING_STYLE": "path"}}}})
    assert config.stream.tables_dir == "s3://hospital-ad/tables"
    assert config.stream.storage.region == "eu-west-1"
    assert config.stream.checkpoint == "s3://hospital-ad/tables/_checkpoints/score_stream"
    assert config.stream.checkpoint_location.spark_uri() == "s3a://hospital-ad/tables/_checkpoints/score_stream"
    conf = config.stream.tables.spark_conf()
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "https://objects.hospital.internal"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"
    local = config_from_mapping({"stream": {"tables_dir": str(tmp_path / "t")}})
    assert local.stream.checkpoint == tmp_path / "t" / "_checkpoints" / "score_stream"
    assert isinstance(local.stream.tables_dir, Path)

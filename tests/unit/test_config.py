from pathlib import Path

import pytest

from jobs.config import ConfigError, config_from_mapping, load_config, read_secret

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "conf").glob("*.yaml")))
def test_every_shipped_configuration_loads(name: str) -> None:
    load_config(REPO / "conf" / name)


def test_unknown_keys_are_errors_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"stream\.kafka: unknown keys \['topics'\]"):
        config_from_mapping({"stream": {"kafka": {"topics": "x"}}})
    with pytest.raises(ConfigError, match="stream.source must be"):
        config_from_mapping({"stream": {"source": "mqtt"}})


def test_paths_and_defaults() -> None:
    config = config_from_mapping({"stream": {"tables_dir": "var/t"}})
    assert config.stream.tables_dir == Path("var/t")
    assert config.stream.checkpoint == Path("var/t/_checkpoints/score_stream")
    assert config.stream.kafka.topic == "iomt_traffic_stream"


def test_records_a_task_reads_are_bounded_by_default_and_checked() -> None:
    from jobs.stream.sources import kafka_options

    options = kafka_options(config_from_mapping({}).stream.kafka)
    assert options["maxRecordsPerPartition"] == "50000" and options["maxOffsetsPerTrigger"] == "50000"
    unbounded = config_from_mapping({"stream": {"kafka": {"max_records_per_partition": None}}})
    assert "maxRecordsPerPartition" not in kafka_options(unbounded.stream.kafka)
    for key, value in (("max_records_per_partition", 0), ("min_partitions", "many"), ("max_offsets_per_trigger", True)):
        with pytest.raises(ConfigError, match=rf"stream\.kafka\.{key} must be a whole number"):
            config_from_mapping({"stream": {"kafka": {key: value}}})


def test_secrets_come_from_environment_or_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "from-env")
    assert read_secret("MY_TOKEN", None, "t") == "from-env"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    monkeypatch.delenv("MY_TOKEN")
    assert read_secret("MY_TOKEN", str(secret), "t") == "from-file"
    assert read_secret("MY_TOKEN", None, "t") is None
    with pytest.raises(ConfigError, match="cannot read secret file"):
        read_secret(None, str(tmp_path / "missing"), "t")

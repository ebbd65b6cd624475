"""Configuration: YAML files in ``conf/`` loaded into frozen dataclasses.

Secrets never live here: fields such as the InfluxDB token name an environment variable (or a
file) that holds the secret, and the value is read only when a client is built.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says which key and why."""


def cache_dir() -> Path:
    """Where set-up caches jars and service binaries (``IOMT_AD_CACHE``, default ``~/.cache/iomt-ad``)."""
    return Path(os.environ.get("IOMT_AD_CACHE", Path.home() / ".cache" / "iomt-ad"))


@dataclass(frozen=True)
class SparkConfig:
    """How to build the SparkSession. ``master`` is only for local runs: under spark-submit it is
    left to the command line (``None``)."""

    master: str | None = None
    jars_dir: Path | None = None  # default: <cache>/jars/spark
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppConfig:
    spark: SparkConfig = field(default_factory=SparkConfig)
    source_path: Path | None = None


def _spark_config(raw: Mapping[str, Any], base: Path) -> SparkConfig:
    unknown = set(raw) - {"master", "jars_dir", "conf"}
    if unknown:
        raise ConfigError(f"spark: unknown keys {sorted(unknown)}; allowed: master, jars_dir, conf")
    jars_dir = raw.get("jars_dir")
    conf = raw.get("conf") or {}
    if not isinstance(conf, Mapping):
        raise ConfigError("spark.conf must be a mapping of Spark property -> value")
    return SparkConfig(
        master=raw.get("master"),
        jars_dir=(base / str(jars_dir)) if jars_dir else None,
        conf={str(k): _spark_value(v) for k, v in conf.items()},
    )


def _spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def config_from_mapping(raw: Mapping[str, Any], base: Path = Path(".")) -> AppConfig:
    return AppConfig(spark=_spark_config(raw.get("spark") or {}, base), source_path=None)


def load_config(path: str | Path) -> AppConfig:
    """Read a YAML configuration file; relative paths in it are relative to the working directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping")
    config = config_from_mapping(raw)
    return AppConfig(spark=config.spark, source_path=path)

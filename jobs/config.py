"""Configuration: YAML files in ``conf/`` loaded into frozen dataclasses.

Secrets never live here: ``influxdb.token_env`` / ``token_file``, ``kafka.sasl_password_env`` /
``sasl_password_file`` and ``kafka.ssl_keystore_password_env`` / ``_file`` name where the secret is,
and it is read only when a client is built.
Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jobs.drift.config import DriftConfig, drift_from_mapping
from jobs.errors import UserError
from jobs.outputs.config import AlertsConfig, alerts_from_mapping
from jobs.storage import StorageConfig, TablesLocation
from models import DEFAULT_BUNDLE
from schemas.flow_record import DEFAULT_MAX_MISSING_SHARE
from schemas.tables import DEFAULT_QUARANTINE_MAX_CHARS

if TYPE_CHECKING:
    from models.bundle import BundleTrust


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message says which key and why."""


def cache_dir() -> Path:
    """Where set-up caches jars and service binaries (``IOMT_AD_CACHE``, default ``~/.cache/iomt-ad``)."""
    return Path(os.environ.get("IOMT_AD_CACHE", Path.home() / ".cache" / "iomt-ad"))


def read_secret(env: str | None, file: str | None, what: str) -> str | None:
    """A secret from an environment variable or a file (never from a configuration value)."""
    if env and os.environ.get(env):
        return os.environ[env]
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    return None


MAX_EVENT_TIME_BOUND = timedelta(days=100 * 365)  # keeps every time within InfluxDB's 1677-2262


def duration(text: str, key: str) -> timedelta:
    """A non-negative duration such as ``"30 days"``, ``"10 minutes"`` or ``"1h30m"`` (pandas'
    Timedelta syntax), at most 100 years."""
    import pandas as pd

    try:
        value = pd.Timedelta(str(text)).to_pytimedelta()
    except ValueError as exc:
        raise ConfigError(f"{key}: {text!r} is not a duration such as '30 days' or '10 minutes'") from exc
    if not timedelta(0) <= value <= MAX_EVENT_TIME_BOUND:
        raise ConfigError(f"{key}: {text!r} must be between 0 and 100 years")
    return value


@dataclass(frozen=True)
class SparkConfig:
    """How to build the SparkSession. ``master`` is only for local runs: under spark-submit it is
    left to the command line (``None``)."""

    master: str | None = None
    jars_dir: Path | None = None  # default: <cache>/jars/spark
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KafkaSourceConfig:
    bootstrap_servers: str = "localhost:9092"
    topic: str = "iomt_traffic_stream"
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = 50000
    min_partitions: int | None = None
    # at most this many records a Spark task (Kafka's maxRecordsPerPartition): a task holds its
    # records several times over while it scores and writes them (~3 KB a record at its peak)
    max_records_per_partition: int | None = 50000
    fail_on_data_loss: bool = False
    security_protocol: str | None = None     # e.g. SASL_SSL
    sasl_mechanism: str | None = None        # e.g. SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password_env: str | None = None     # environment variable holding the password
    sasl_password_file: str | None = None    # or a file holding it
    allow_sasl_plaintext: bool = False       # SASL_PLAINTEXT sends the credentials unencrypted: refused unless true
    ssl_ca_file: str | None = None           # PEM file of the CA(s) that signed the brokers' certificates
    ssl_keystore_file: str | None = None     # PKCS#12 file of this client's key and certificate (mutual TLS)
    ssl_keystore_password_env: str | None = None   # environment variable holding the keystore's password
    ssl_keystore_password_file: str | None = None  # or a file holding it
    options: Mapping[str, str] = field(default_factory=dict)  # more kafka.* options (no secrets)
    wire_format: str = "json"                # or "avro": Confluent wire format, schema from schemas/ (jobs/wire.py)
    avro_schema_id: int = 1                  # the schema id Avro messages carry (pinned: no registry)


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
JAAS_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")  # whose JAAS line is built from sasl_username
# Kafka options only the typed keys may set (the checks below must see them), and those a typed key sets
TYPED_KAFKA_OPTIONS = {"security.protocol": "security_protocol", "sasl.mechanism": "sasl_mechanism"}
TLS_FILE_OPTIONS = {"ssl.truststore.location": "ssl_ca_file", "ssl.keystore.location": "ssl_keystore_file"}


def check_kafka_security(kafka: KafkaSourceConfig, where: str = "stream.kafka") -> None:
    """Refuse a Kafka configuration that would send credentials in clear, or whose TLS or SASL keys
    would be ignored without a word."""
    protocol = (kafka.security_protocol or "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"{where}.security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                          f"not {kafka.security_protocol!r}")
    for option in kafka.options:
        key = option.removeprefix("kafka.")
        if key in TYPED_KAFKA_OPTIONS:
            raise ConfigError(f"{where}.options.{option}: set {where}.{TYPED_KAFKA_OPTIONS[key]} instead")
        if key in TLS_FILE_OPTIONS and getattr(kafka, TLS_FILE_OPTIONS[key]):
            raise ConfigError(f"{where}.options.{option} and {where}.{TLS_FILE_OPTIONS[key]} are both set: keep one")
        if key == "sasl.jaas.config" and (kafka.sasl_mechanism or "").upper() in JAAS_MECHANISMS:
            raise ConfigError(f"{where}.options.{option}: the JAAS line of {kafka.sasl_mechanism} is built from "
                              f"{where}.sasl_username and the password's env or file; remove this option")
    uses_sasl = protocol.startswith("SASL_")
    if kafka.sasl_mechanism and not uses_sasl:
        raise ConfigError(f"{where}.sasl_mechanism is set but security_protocol is {protocol}: the client would "
                          "connect without SASL. Set security_protocol: SASL_SSL")
    if protocol == "SASL_PLAINTEXT" and not kafka.allow_sasl_plaintext:
        raise ConfigError(f"{where}.security_protocol SASL_PLAINTEXT sends the SASL credentials (with PLAIN, the "
                          "password itself) and every record unencrypted: use SASL_SSL (with ssl_ca_file for an "
                          f"internal CA), or set {where}.allow_sasl_plaintext: true on a network you trust")
    uses_tls = protocol in ("SSL", "SASL_SSL")
    for key in ("ssl_ca_file", "ssl_keystore_file"):
        if getattr(kafka, key) and not uses_tls:
            raise ConfigError(f"{where}.{key} is set but security_protocol is {protocol}: set SSL or SASL_SSL")
    if kafka.ssl_keystore_file and not (kafka.ssl_keystore_password_env or kafka.ssl_keystore_password_file):
        raise ConfigError(f"{where}.ssl_keystore_file needs ssl_keystore_password_env or ssl_keystore_password_file")


@dataclass(frozen=True)
class FilesSourceConfig:
    path: Path = Path("var/incoming")
    max_files_per_trigger: int | None = None


@dataclass(frozen=True)
class InfluxConfig:
    enabled: bool = False
    url: str = "http://localhost:8086"
    org: str = "iomt"
    bucket: str = "iomt"
    token_env: str | None = "INFLUXDB_TOKEN"  # a token that may only write the bucket: `iomt-ad influx-tokens`
    token_file: str | None = None
    ssl_ca_file: str | None = None  # PEM file of the CA(s) that signed InfluxDB's certificate (an https url)
    batch_size: int = 5000      # points per write request
    max_retries: int = 3
    timeout_ms: int = 10000
    parallel_writes: int = 2    # requests of one micro-batch in flight at once
    # the most one task of a micro-batch waits for InfluxDB (requests, retries, backoff): points not
    # sent by then are counted failed in batch_log, for `iomt-ad influx-backfill`
    max_batch_delay_s: float = 5.0
    # which records get a point of their own (flow_scores): "anomalies" (default) or "all" (small
    # sites); every record is counted in the per-device aggregates (device_traffic) either way
    record_points: str = "anomalies"
    aggregate_interval: str = "10s"  # device_traffic's interval of event time: whole seconds, 1s to 1h

    def __post_init__(self) -> None:
        from schemas.influx import RECORD_POINTS

        if self.record_points not in RECORD_POINTS:
            raise ConfigError(f"influxdb.record_points must be one of {list(RECORD_POINTS)}, "
                              f"not {self.record_points!r}")
        self.aggregate_interval_ns  # noqa: B018 - validates the interval now, not at the first batch
        if not isinstance(self.max_batch_delay_s, (int, float)) or not 0 < self.max_batch_delay_s <= 3600:
            raise ConfigError(f"influxdb.max_batch_delay_s must be a number of seconds above 0 and at most 3600, "
                              f"not {self.max_batch_delay_s!r}")

    @property
    def aggregate_interval_ns(self) -> int:
        """``aggregate_interval`` in ns; a :class:`ConfigError` unless whole seconds from 1 s to 1 h."""
        value = duration(self.aggregate_interval, "influxdb.aggregate_interval")
        if value.microseconds or not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ConfigError(f"influxdb.aggregate_interval: {self.aggregate_interval!r} must be whole seconds "
                              "from 1s to 1h, e.g. '10s' or '1m'")
        return int(value.total_seconds()) * 1_000_000_000


def check_influx_tls(influx: InfluxConfig) -> None:
    """Refuse a CA file that would be ignored (an http url)."""
    if influx.ssl_ca_file and not influx.url.lower().startswith("https://"):
        raise ConfigError(f"influxdb.ssl_ca_file is set but influxdb.url {influx.url} is not https: use https://")


@dataclass(frozen=True)
class ModelTrustConfig:
    """``stream.model_trust``: what the bundle at ``stream.model_dir`` must be before a worker loads it.
    The manifest lives beside the files it pins, so a pin must come from here, a file the model
    directory's writers cannot change."""

    manifest_sha256: str | None = None  # sha256 of <model_dir>/manifest.json (sha256sum); None: not pinned
    allow_unpickle: bool = False        # let workers load the joblib (pickle) forests when ONNX cannot serve

    def bundle_trust(self) -> "BundleTrust":
        from models.bundle import BundleTrust  # lazily: models.bundle loads scikit-learn

        return BundleTrust(manifest_sha256=self.manifest_sha256, allow_unpickle=self.allow_unpickle,
                           where="stream.model_trust")


def check_model_trust(trust: ModelTrustConfig) -> None:
    pin = trust.manifest_sha256
    if pin is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(pin)):
        raise ConfigError("stream.model_trust.manifest_sha256 must be the 64 hex digits of "
                          "`sha256sum <model_dir>/manifest.json`")


@dataclass(frozen=True)
class CompactionConfig:
    """``stream.compaction``: the stream compacts its own small files as it runs
    (:mod:`jobs.stream.compaction`), so that the number of files, and with it every commit's, reader's
    and checkpoint's cost, stays bounded while it runs."""

    every: str = "10 minutes"  # how often, at most; "0" turns it off (then run `iomt-ad maintain`)
    target_file_mb: int = 64   # smaller files are merged into files of about this size; larger ones are left alone

    @property
    def interval(self) -> timedelta | None:
        """``every`` as a duration; None when compaction is off."""
        every = duration(self.every, "stream.compaction.every")
        return every if every > timedelta(0) else None


MAX_CONTEXT_WINDOWS = 64  # a context travels with every record (39 doubles a window)


@dataclass(frozen=True)
class SequenceConfig:
    """``stream.sequence``: each device's last windows kept in the stream's state and attached to its
    next records as their ``context`` (:mod:`jobs.stream.device_context`), for a sequence
    autoencoder (a bundle whose ``lstm_ae`` reads ``timesteps`` > 1 windows: :mod:`models.sequences`).
    Turning it on or off changes the query's plan: a checkpoint written one way refuses to start the
    other way (:func:`jobs.stream.checkpoint_guard.check_plan`)."""

    context_windows: int = 0        # previous windows each device keeps; 0: off (no stateful operator)
    max_gap: str = "10 minutes"     # event time between two windows that cuts a context
    state_ttl: str = "1 hour"       # processing time after which an idle device's windows are dropped

    @property
    def enabled(self) -> bool:
        return self.context_windows > 0

    @property
    def max_gap_s(self) -> float:
        """``max_gap`` in seconds (more than zero)."""
        gap = duration(self.max_gap, "stream.sequence.max_gap")
        if gap <= timedelta(0):
            raise ConfigError(f"stream.sequence.max_gap: {self.max_gap!r} must be more than zero, e.g. '10 minutes'")
        return gap.total_seconds()

    @property
    def state_ttl_ms(self) -> int:
        """``state_ttl`` in whole milliseconds (at least one second)."""
        ttl = duration(self.state_ttl, "stream.sequence.state_ttl")
        if ttl < timedelta(seconds=1):
            raise ConfigError(f"stream.sequence.state_ttl: {self.state_ttl!r} must be at least 1 second, "
                              "e.g. '1 hour'")
        return int(ttl / timedelta(milliseconds=1))


def check_sequence(sequence: SequenceConfig) -> None:
    """Refuse ``stream.sequence`` values the stream cannot use; durations are checked even when off."""
    windows = sequence.context_windows
    if isinstance(windows, bool) or not isinstance(windows, int) or not 0 <= windows <= MAX_CONTEXT_WINDOWS:
        raise ConfigError(f"stream.sequence.context_windows must be a whole number from 0 (off) to "
                          f"{MAX_CONTEXT_WINDOWS}, not {windows!r}")
    sequence.max_gap_s  # noqa: B018 - validates the durations now, not at the first batch
    sequence.state_ttl_ms  # noqa: B018


@dataclass(frozen=True)
class StreamConfig:
    source: str = "files"  # "kafka" or "files"
    kafka: KafkaSourceConfig = field(default_factory=KafkaSourceConfig)
    files: FilesSourceConfig = field(default_factory=FilesSourceConfig)
    strict_fields: bool = False        # unknown extra JSON fields (or duplicate keys) quarantine the record
    max_missing_share: float = DEFAULT_MAX_MISSING_SHARE  # more features null or NaN: quarantined, not scored
    quarantine_max_chars: int = DEFAULT_QUARANTINE_MAX_CHARS  # characters of a quarantined message kept
    # event_time further than this before / after the ingest time is replaced by it (and kept in
    # claimed_event_time); raise event_time_max_past to score old captures with their own times
    event_time_max_past: str = "30 days"
    event_time_max_future: str = "10 minutes"
    tables_dir: Path | str = Path("var/delta")  # a path, or an object store URI (s3://bucket/prefix)
    storage: StorageConfig = field(default_factory=StorageConfig)  # how to reach an object store
    checkpoint_dir: Path | str | None = None  # default: <tables_dir>/_checkpoints/score_stream
    trigger: str = "5 seconds"          # a processing-time interval, or "availableNow"
    app_id: str = "iomt-ad-score-stream"  # txnAppId of the Delta writes
    model_dir: Path = DEFAULT_BUNDLE
    model_trust: ModelTrustConfig = field(default_factory=ModelTrustConfig)  # pin; unpickling refused
    # "champion": each batch is scored by the model registry's champion (and its challenger in
    # shadow), read when the batch begins (jobs.stream.model_roles); None: model_dir
    model_role: str | None = None
    # an incident (jobs.stream.incidents) closes once the stream's event time is this long past its last alert
    incident_quiet_time: str = "10 minutes"
    compaction: CompactionConfig = field(default_factory=CompactionConfig)
    # each device's previous windows as every record's context (jobs.stream.device_context); off by default
    sequence: SequenceConfig = field(default_factory=SequenceConfig)

    @property
    def event_time_bounds(self) -> tuple[timedelta, timedelta]:
        """(max_past, max_future) of ``event_time`` around the ingest time."""
        return duration(self.event_time_max_past, "stream.event_time_max_past"), duration(
            self.event_time_max_future, "stream.event_time_max_future")

    @property
    def incident_quiet(self) -> timedelta:
        """``incident_quiet_time`` as a duration (more than zero)."""
        quiet = duration(self.incident_quiet_time, "stream.incident_quiet_time")
        if quiet <= timedelta(0):
            raise ConfigError(f"stream.incident_quiet_time: {self.incident_quiet_time!r} must be more than zero")
        return quiet

    @property
    def tables(self) -> TablesLocation:
        """Where the tables are and how to reach them (:mod:`jobs.storage`)."""
        return TablesLocation.of(self.tables_dir, self.storage)

    @property
    def checkpoint(self) -> Path | str:
        """The query's checkpoint: a local path, or a URI on the tables' object store."""
        if self.checkpoint_dir is not None:
            return self.checkpoint_dir
        tables = self.tables
        return Path(self.tables_dir) / "_checkpoints" / "score_stream" if tables.is_local else \
            tables.uri("_checkpoints/score_stream")

    @property
    def checkpoint_location(self) -> TablesLocation:
        """The checkpoint as a location (its filesystem, its Spark form)."""
        return TablesLocation.of(self.checkpoint, self.storage)


@dataclass(frozen=True)
class AppConfig:
    spark: SparkConfig = field(default_factory=SparkConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    influxdb: InfluxConfig = field(default_factory=InfluxConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)  # incident outputs (jobs.outputs)
    drift: DriftConfig = field(default_factory=DriftConfig)  # drift per hour and device group (jobs.drift)
    source_path: Path | None = None


def _build(cls: type, raw: Mapping[str, Any] | None, where: str, nested: Mapping[str, type] | None = None):
    """A dataclass from a mapping: unknown keys are errors, Paths are converted, nested dataclasses built."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    nested = nested or {}
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in nested:
            values[key] = _build(nested[key], value, f"{where}.{key}")
        elif key in ("conf", "options"):
            if not isinstance(value or {}, Mapping):
                raise ConfigError(f"{where}.{key} must be a mapping")
            values[key] = {str(k): _text(v) for k, v in (value or {}).items()}
        elif isinstance(value, str) and "://" in value and "str" in str(known[key].type):
            values[key] = value  # a URI (an object store) stays text
        elif value is not None and "Path" in str(known[key].type):
            values[key] = Path(str(value)).expanduser()
        else:
            values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_kafka_sizes(kafka: KafkaSourceConfig, where: str = "stream.kafka") -> None:
    """The records a trigger and a task read: whole numbers, or None (Spark's default)."""
    for key in ("max_offsets_per_trigger", "min_partitions", "max_records_per_partition"):
        value = getattr(kafka, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{where}.{key} must be a whole number of at least 1 (or left out), not {value!r}")


def check_wire_format(kafka: KafkaSourceConfig, where: str = "stream.kafka") -> None:
    from jobs.wire import MAX_SCHEMA_ID, WIRE_FORMATS

    if kafka.wire_format not in WIRE_FORMATS:
        raise ConfigError(f"{where}.wire_format must be one of {', '.join(WIRE_FORMATS)}, not {kafka.wire_format!r}")
    schema_id = kafka.avro_schema_id
    if isinstance(schema_id, bool) or not isinstance(schema_id, int) or not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ConfigError(f"{where}.avro_schema_id must be an integer from 0 to {MAX_SCHEMA_ID}, not {schema_id!r}")


def config_from_mapping(raw: Mapping[str, Any], source_path: Path | None = None) -> AppConfig:
    unknown = sorted(set(raw) - {"spark", "stream", "influxdb", "alerts", "drift"})
    if unknown:
        raise ConfigError(f"unknown top-level keys {unknown}; allowed: spark, stream, influxdb, alerts, drift")
    stream = _build(StreamConfig, raw.get("stream"), "stream",
                    {"kafka": KafkaSourceConfig, "files": FilesSourceConfig, "storage": StorageConfig,
                     "model_trust": ModelTrustConfig, "compaction": CompactionConfig,
                     "sequence": SequenceConfig})
    if stream.source not in ("kafka", "files"):
        raise ConfigError(f"stream.source must be 'kafka' or 'files', not {stream.source!r}")
    if not 0 <= stream.max_missing_share < 1:
        raise ConfigError(f"stream.max_missing_share must be at least 0 and below 1, not {stream.max_missing_share!r}")
    if stream.quarantine_max_chars < 0:
        raise ConfigError("stream.quarantine_max_chars must not be negative")
    stream.event_time_bounds  # noqa: B018 - validates both durations now, not at the first batch
    stream.compaction.interval  # noqa: B018 - likewise
    if not 0 < stream.compaction.target_file_mb <= 4096:
        raise ConfigError("stream.compaction.target_file_mb must be from 1 to 4096, not "
                          f"{stream.compaction.target_file_mb!r}")
    stream.incident_quiet  # noqa: B018 - validated now too
    check_sequence(stream.sequence)
    if stream.model_role not in (None, "champion"):
        raise ConfigError(f"stream.model_role: {stream.model_role!r}: use champion (the model registry's) or leave "
                          "it out (stream.model_dir)")
    try:
        stream.tables  # noqa: B018 - validates tables_dir (a path, or a supported object store URI)
    except UserError as exc:
        raise ConfigError(str(exc)) from exc
    check_kafka_security(stream.kafka)
    check_wire_format(stream.kafka)
    check_kafka_sizes(stream.kafka)
    check_model_trust(stream.model_trust)
    influxdb = _build(InfluxConfig, raw.get("influxdb"), "influxdb")
    check_influx_tls(influxdb)
    return AppConfig(
        spark=_build(SparkConfig, raw.get("spark"), "spark"),
        stream=stream,
        influxdb=influxdb,
        alerts=alerts_from_mapping(raw.get("alerts"), _build, duration, ConfigError),
        drift=drift_from_mapping(raw.get("drift"), _build, ConfigError),
        source_path=source_path,
    )


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
    try:
        return config_from_mapping(raw, source_path=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc

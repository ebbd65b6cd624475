"""The flow record: the 39 features of the current CICIoMT2024 release plus record metadata.

The feature names are exactly the dataset's (note the spaces in ``Protocol Type``, ``Tot sum`` and
``Tot size``). Every feature is a double: some columns hold integers in one capture and window
averages in another, and ``Rate`` holds ``inf`` in some rows, which the preprocessing handles.
"""
from __future__ import annotations

import hashlib
from typing import Final

SCHEMA_VERSION: Final[str] = "ciciomt2024-wifi-mqtt-39/1"

FEATURES: Final[tuple[str, ...]] = (
    "Header_Length", "Protocol Type", "Time_To_Live", "Rate",
    "fin_flag_number", "syn_flag_number", "rst_flag_number", "psh_flag_number",
    "ack_flag_number", "ece_flag_number", "cwr_flag_number",
    "ack_count", "syn_count", "fin_count", "rst_count",
    "HTTP", "HTTPS", "DNS", "Telnet", "SMTP", "SSH", "IRC", "TCP", "UDP", "DHCP",
    "ARP", "ICMP", "IGMP", "IPv", "LLC",
    "Tot sum", "Min", "Max", "AVG", "Std", "Tot size", "IAT", "Number", "Variance",
)

# Columns only the first (45-feature) release of CICIoMT2024 has. Several shared columns are
# computed differently there, so its files are refused rather than silently mixed in.
ORIGINAL_RELEASE_ONLY: Final[frozenset[str]] = frozenset(
    {"Duration", "Srate", "Drate", "Magnitue", "Radius", "Covariance", "Weight"}
)

# Features that grow with the window's length (CICIoMT2024 used 100-packet windows exactly in its
# DoS/DDoS captures, so these encode the capture's class): Tot sum = AVG x Number, and each *_count
# is the matching *_flag_number x Number. A window-invariant bundle leaves them out of its models.
WINDOW_DEPENDENT: Final[tuple[str, ...]] = ("Number", "Tot sum", "ack_count", "syn_count", "fin_count", "rst_count")
WINDOW_INVARIANT: Final[tuple[str, ...]] = tuple(f for f in FEATURES if f not in WINDOW_DEPENDENT)

# Record metadata carried beside the features in the stream and the Delta tables.
RECORD_ID: Final[str] = "record_id"
SOURCE_ID: Final[str] = "source_id"
EVENT_TIME: Final[str] = "event_time"
LABEL: Final[str] = "label"
METADATA_FIELDS: Final[tuple[str, ...]] = (RECORD_ID, SOURCE_ID, EVENT_TIME, LABEL)

# The device a record describes and its window's traffic, as the sensor (jobs/sensor) sends them;
# absent (null) in records replayed from a dataset. Optional: a record without them is valid.
DEVICE_ID: Final[str] = "device_id"          # mac:<address> or ip:<address> (jobs.sensor.devices)
DEVICE_MAC: Final[str] = "device_mac"
DEVICE_IP: Final[str] = "device_ip"
DEVICE_VENDOR: Final[str] = "device_vendor"  # the organisation the IEEE registered the MAC's OUI to
PEER_IP: Final[str] = "peer_ip"              # the address the device exchanged most packets with
TRANSPORT: Final[str] = "transport"          # the window's dominant transport: TCP, UDP, ICMP...
DEVICE_PORT: Final[str] = "device_port"      # the dominant port on the device's side
PEER_PORT: Final[str] = "peer_port"          # and on the peer's side
DEVICE_TEXT_FIELDS: Final[tuple[str, ...]] = (DEVICE_ID, DEVICE_MAC, DEVICE_IP, DEVICE_VENDOR, PEER_IP, TRANSPORT)
DEVICE_PORT_FIELDS: Final[tuple[str, ...]] = (DEVICE_PORT, PEER_PORT)
DEVICE_FIELDS: Final[tuple[str, ...]] = (*DEVICE_TEXT_FIELDS, *DEVICE_PORT_FIELDS)

# A record's context in the stream when ``stream.sequence`` is on: its device's previous windows,
# oldest first (models.sequences), each its event time in ns since the epoch and its 39 raw features
# in FEATURES order; null for records without a device and quarantined ones. Never stored in a table.
CONTEXT: Final[str] = "context"
CONTEXT_TIME: Final[str] = "event_time_ns"
CONTEXT_FEATURES: Final[str] = "features"
CONTEXT_DDL: Final[str] = f"array<struct<{CONTEXT_TIME}: bigint, {CONTEXT_FEATURES}: array<double>>>"


# A record with more than this share of its 39 features null or NaN is quarantined, not scored:
# imputing most of a record with benign medians would score it as normal (fail open). Real
# CICIoMT2024 rows miss at most 2 of 39 (2 of 74,232 rows in ../shared/data/ciciomt2024).
DEFAULT_MAX_MISSING_SHARE: Final[float] = 0.2


def feature_schema_hash(features: tuple[str, ...] = FEATURES) -> str:
    """A stable hash of the feature names and order; model bundles record it and loading checks it."""
    return hashlib.sha256("\x1f".join(features).encode("utf-8")).hexdigest()


def flow_schema():
    """The wire schema of one JSON flow message (Kafka or files), as the streaming job parses it
    (``jobs.stream.parse.parse_flows``): the metadata as text (``event_time`` is read as ISO-8601 and
    checked afterwards, so a bad time is quarantined with a reason rather than nulled), the device
    fields (text, ports as integers), the 39 features as doubles. Every field is nullable here; the
    parser's checks decide what a record must have (``record_id``; every feature key, a value or an
    explicit null)."""
    from pyspark.sql import types as T  # lazy: pure-pandas users (training, scoring) need no pyspark

    return T.StructType([*[T.StructField(name, T.StringType()) for name in (*METADATA_FIELDS, *DEVICE_TEXT_FIELDS)],
                         *[T.StructField(name, T.IntegerType()) for name in DEVICE_PORT_FIELDS],
                         *[T.StructField(name, T.DoubleType()) for name in FEATURES]])


def context_type():
    """The Spark type of the ``context`` column (:data:`CONTEXT_DDL`)."""
    from pyspark.sql import types as T  # lazy, as in flow_schema

    window = T.StructType([T.StructField(CONTEXT_TIME, T.LongType()),
                           T.StructField(CONTEXT_FEATURES, T.ArrayType(T.DoubleType()))])
    return T.ArrayType(window)


def column_name(feature: str) -> str:
    """The Delta/InfluxDB column name of a feature: lower case, spaces as underscores
    (``Protocol Type`` -> ``protocol_type``). Delta refuses spaces in column names without column
    mapping, and analysts should not need backquotes."""
    return feature.strip().lower().replace(" ", "_")


FEATURE_COLUMNS: Final[tuple[str, ...]] = tuple(column_name(f) for f in FEATURES)

# IANA protocol numbers seen in the dataset's "Protocol Type" column.
PROTOCOL_NAMES: Final[dict[int, str]] = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP"}

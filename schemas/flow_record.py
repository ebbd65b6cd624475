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

# Record metadata carried beside the features in the stream and the Delta tables.
RECORD_ID: Final[str] = "record_id"
SOURCE_ID: Final[str] = "source_id"
EVENT_TIME: Final[str] = "event_time"
LABEL: Final[str] = "label"
METADATA_FIELDS: Final[tuple[str, ...]] = (RECORD_ID, SOURCE_ID, EVENT_TIME, LABEL)


def feature_schema_hash(features: tuple[str, ...] = FEATURES) -> str:
    """A stable hash of the feature names and order; model bundles record it and loading checks it."""
    return hashlib.sha256("\x1f".join(features).encode("utf-8")).hexdigest()


def _spark_types():  # lazy: pure-pandas users (training, scoring core) need no pyspark import
    from pyspark.sql import types as T

    return T


def feature_struct_fields():
    """The 39 features as Spark ``StructField``s (all doubles, nullable: nulls are imputed)."""
    T = _spark_types()
    return [T.StructField(name, T.DoubleType(), True) for name in FEATURES]


def flow_schema():
    """``FLOW_SCHEMA``: the strict schema of one JSON flow message on the wire (Kafka or files).

    ``record_id`` and ``source_id`` identify the record; ``event_time`` is when the sensor or
    the replayer stamped it; ``label`` is the true class where known (replayed datasets), else null.
    """
    T = _spark_types()
    return T.StructType(
        [
            T.StructField(RECORD_ID, T.StringType(), False),
            T.StructField(SOURCE_ID, T.StringType(), True),
            T.StructField(EVENT_TIME, T.TimestampType(), True),
            T.StructField(LABEL, T.StringType(), True),
            *feature_struct_fields(),
        ]
    )


def csv_schema():
    """The schema of one official CICIoMT2024 CSV file: the 39 features, in file order."""
    T = _spark_types()
    return T.StructType(feature_struct_fields())


def __getattr__(name: str):
    # ``from schemas.flow_record import FLOW_SCHEMA`` works, without importing pyspark at module load.
    if name == "FLOW_SCHEMA":
        return flow_schema()
    if name == "CSV_SCHEMA":
        return csv_schema()
    raise AttributeError(name)


def column_name(feature: str) -> str:
    """The Delta/InfluxDB column name of a feature: lower case, spaces as underscores
    (``Protocol Type`` -> ``protocol_type``). Delta refuses spaces in column names without column
    mapping, and analysts should not need backquotes."""
    return feature.strip().lower().replace(" ", "_")


FEATURE_COLUMNS: Final[tuple[str, ...]] = tuple(column_name(f) for f in FEATURES)

# IANA protocol numbers seen in the dataset's "Protocol Type" column.
PROTOCOL_NAMES: Final[dict[int, str]] = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP"}

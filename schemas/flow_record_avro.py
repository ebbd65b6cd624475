"""The flow record as an Avro record, derived from :mod:`schemas.flow_record` (the one definition):
the fields of :func:`schemas.flow_record.flow_schema`, in its order, every one nullable
(``["null", T]``, default null) as in the JSON wire schema; the parse step's checks decide what a
record must have.

Avro names are ``[A-Za-z_][A-Za-z0-9_]*``, so the features go by their column names
(``protocol_type``, ``tot_sum``...), which are also the parsed records' column names; each such
field's ``doc`` holds the dataset's name. ``python -m schemas.flow_record_avro`` prints the schema
(to register it in a schema registry, or to read it).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Final

from schemas.flow_record import DEVICE_PORT_FIELDS, DEVICE_TEXT_FIELDS, FEATURES, METADATA_FIELDS, column_name

AVRO_NAMESPACE: Final[str] = "io.iomt_ad.wire"
AVRO_RECORD: Final[str] = "FlowRecord"

# (Avro name, JSON name, Avro type) of every field, in the order of schemas.flow_record.flow_schema
WIRE_FIELDS: Final[tuple[tuple[str, str, str], ...]] = (
    *[(name, name, "string") for name in (*METADATA_FIELDS, *DEVICE_TEXT_FIELDS)],
    *[(name, name, "int") for name in DEVICE_PORT_FIELDS],
    *[(column_name(f), f, "double") for f in FEATURES],
)


def avro_schema() -> dict[str, Any]:
    """The Avro schema of one flow record (a JSON-able dict)."""
    return {
        "type": "record", "name": AVRO_RECORD, "namespace": AVRO_NAMESPACE,
        "doc": "IoMT-AD flow record: metadata, device fields, the 39 CICIoMT2024 features (column names)",
        "fields": [{"name": wire, "type": ["null", kind], "default": None,
                    **({"doc": json_name} if json_name != wire else {})} for wire, json_name, kind in WIRE_FIELDS],
    }


def avro_schema_json() -> str:
    """:func:`avro_schema` as compact JSON text (what ``from_avro`` and a registry take)."""
    return json.dumps(avro_schema(), separators=(",", ":"))


if __name__ == "__main__":
    sys.stdout.write(json.dumps(avro_schema(), indent=2) + "\n")

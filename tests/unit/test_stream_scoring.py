"""The sink's tasks score their partition themselves: the same decisions as score_frame, protocol
names from the one rule the re-scoring UDF uses too (half up, as Spark rounds), and a record the models cannot score moved to the
quarantine with its parsed form as payload."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest

from jobs.stream.scoring import score_partition
from models.bundle import load_bundle
from models.training.datasets import load_flows_pandas
from schemas.flow_record import FEATURE_COLUMNS, FEATURES
from tests.helpers.streaming import BUNDLE
from udfs.scoring import protocol_names, score_frame


def test_protocol_names_round_half_up_like_spark() -> None:
    got = protocol_names(np.array([6.0, 6.5, 17.4, 0.6, np.nan, 1e10, -3.0, 2.0]),
                    np.array([0, 0, 0, 0, 1, 0, 0, 0.0]))
    assert got.tolist() == ["TCP", "other", "UDP", "ICMP", "ARP", "other", "other", "IGMP"]


def _prepared(sample_dir, n: int = 40) -> pa.Table:
    flows = load_flows_pandas([sample_dir / "TCP_IP-DoS-UDP_test.pcap.csv", sample_dir / "Benign_test.pcap.csv"])
    flows = flows.sample(n, random_state=3).reset_index(drop=True)
    columns = {"quarantine_reason": pa.nulls(n, pa.string()), "raw_value": pa.nulls(n, pa.string()),
               "raw_bytes": pa.nulls(n, pa.int32()), "raw_sha256": pa.nulls(n, pa.string()),
               "record_id": pa.array([f"r{i}" for i in range(n)]), "source_id": pa.array(["s"] * n),
               "event_time": pa.array([datetime(2026, 5, 5, tzinfo=timezone.utc)] * n), "label": pa.nulls(n, pa.string()),
               **{name: pa.nulls(n, pa.string()) for name in ("device_id", "device_mac", "device_ip", "device_vendor",
                                                               "peer_ip", "transport")},
               "device_port": pa.nulls(n, pa.int32()), "peer_port": pa.nulls(n, pa.int32())}
    columns.update({column: pa.array(flows[feature].to_numpy(np.float64)) for feature, column in zip(FEATURES, FEATURE_COLUMNS)})
    return pa.table(columns), flows[list(FEATURES)]


def test_a_partition_scores_as_score_frame_does(sample_dir) -> None:
    bundle = load_bundle(BUNDLE)
    prepared, features = _prepared(sample_dir)
    scored = score_partition(prepared, str(BUNDLE), 8192, bundle=bundle)
    expected = score_frame(features, bundle)
    assert scored["ensemble_score"].to_numpy().tolist() == pytest.approx(expected["ensemble_score"].tolist())
    assert scored["predicted_class"].to_pylist() == expected["predicted_class"].tolist()
    assert scored["top_features"].to_pylist() == expected["top_features"].tolist()
    assert scored.schema.field("is_anomaly").type == pa.bool_() and scored["quarantine_reason"].null_count == len(scored)


def test_a_record_the_models_cannot_score_is_quarantined_with_its_parsed_form(sample_dir) -> None:
    class Refuses:
        input = "invariant"

        def __init__(self, real) -> None:
            self.real = real

        def inputs(self, *args, **kwargs):
            return self.real.inputs(*args, **kwargs)

        def predict(self, x):
            if (np.asarray(x)[:, 0] > 1e6).any():
                raise ValueError("refused")
            return self.real.predict(x)

    bundle = load_bundle(BUNDLE)
    broken = dataclasses.replace(bundle, classifier=Refuses(bundle.classifier))
    prepared, _ = _prepared(sample_dir, 6)
    header = prepared["header_length"].to_pylist()
    header[2] = 1e9  # the first input column of the classifier: Header_Length, cleaned
    prepared = prepared.set_column(prepared.schema.get_field_index("header_length"), "header_length",
                                   pa.array(header, pa.float64()))
    scored = score_partition(prepared, str(BUNDLE), 50, bundle=broken)
    reasons = scored["quarantine_reason"].to_pylist()
    assert reasons[2] == "scoring failed: ValueError: refused" and reasons.count(None) == 5
    raw = scored["raw_value"][2].as_py()
    assert len(raw) == 50 and raw.startswith('{"record_id": "r2"')  # the parsed record, capped at 50
    assert scored["raw_bytes"][2].as_py() > 500  # the whole record: 39 features and the metadata
    assert int(scored["raw_sha256"][2].as_py(), 16) >= 0 and len(scored["raw_sha256"][2].as_py()) == 64

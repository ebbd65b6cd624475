"""Hypothesis strategies for hostile flow messages, and the fuzz budget.

CI runs every fuzz test with a fixed seed and a small budget (``derandomize``). A longer run scales
the number of examples and can pick its own seed::

    IOMT_AD_FUZZ_SCALE=40 IOMT_AD_FUZZ_SEED=$RANDOM make test PYTEST_ARGS="-m fuzz"

A failing example is printed by Hypothesis (with ``@reproduce_failure`` when a seed was given).
"""
from __future__ import annotations

import json
import math
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from schemas.flow_record import EVENT_TIME, FEATURES, LABEL, RECORD_ID, SOURCE_ID

SCALE = max(1, int(os.environ.get("IOMT_AD_FUZZ_SCALE", "1")))
SEED = os.environ.get("IOMT_AD_FUZZ_SEED")


def fuzz_settings(ci_examples: int) -> settings:
    """``ci_examples`` examples times ``IOMT_AD_FUZZ_SCALE``; a fixed seed unless ``IOMT_AD_FUZZ_SEED``
    is set; no example database (a CI run starts clean)."""
    return settings(max_examples=ci_examples * SCALE, deadline=None, database=None,
                    derandomize=SEED is None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def seeded(test):
    """Apply ``IOMT_AD_FUZZ_SEED`` when it is set."""
    from hypothesis import seed

    return seed(int(SEED))(test) if SEED is not None else test


# numbers at and beyond the limits of a double, and the non-finite tokens Spark's reader accepts
EXTREME_NUMBER_TEXT = ["0", "-0", "1e308", "-1e308", "1.7976931348623157e308", "1e309", "-1e400", "5e-324",
                       "1e-400", "123456789012345678901234567890", "1e10", "-1e300", "NaN", "Infinity",
                       "-Infinity", "+Infinity", "1.0e+2", "00012", "0x1F", ".5", "1.", "--1"]
TIMESTAMPS = ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456+05:30", "0001-01-01T00:00:00Z",
              "9999-12-31T23:59:59Z", "2262-04-12T00:00:00Z", "1677-09-21T00:00:00Z", "1969-12-31T23:59:59Z",
              "+294247-01-10T04:00:54Z", "-0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-02", "now",
              "", "1700000000", "2026-01-02T03:04:05+99:00"]
NASTY_TEXT = ["", " ", "\\", "a\\", "a,b=c d", "\n", "line\nbreak", "\t\r", "\x00", "\u202e", "\ud7ff", "🩺",
              "\"quoted\"", "a" * 300, "=", ",", "#", "unknown", ":", "a:b:c"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), st.sampled_from(NASTY_TEXT))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def _number_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _object_text(pairs: list[tuple[str, str]]) -> str:
    """A JSON object from (key, value text) pairs; keys may repeat (duplicate keys)."""
    return "{" + ", ".join(f"{json.dumps(key)}: {text}" for key, text in pairs) + "}"


def _plain_text(text: str, most: int) -> bool:
    """Text a metadata field may hold (README, the flow record): at most ``most`` characters, no
    control characters (U+0000-U+001F, U+007F)."""
    import re

    return len(text) <= most and re.search("[\x00-\x1f\x7f]", text) is None


@st.composite
def records(draw) -> tuple[bytes | None, bool]:
    """(message bytes or None for a tombstone, whether it is a clean, valid record)."""
    feature_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                               st.sampled_from([0.0, 1.0, 100.0, 10.0, 6.0, 17.0]))
    pairs: list[tuple[str, str]] = [(name, _number_text(draw(feature_values))) for name in FEATURES]
    record_id = draw(st.text(min_size=1, max_size=24).filter(lambda s: s.strip() != ""))
    source_id = draw(st.sampled_from(NASTY_TEXT))
    label = draw(st.sampled_from(["Benign", "DDoS-UDP", None, *NASTY_TEXT]))
    pairs += [(RECORD_ID, json.dumps(record_id)), (SOURCE_ID, json.dumps(source_id)), (LABEL, json.dumps(label))]
    if draw(st.booleans()):
        pairs.append((EVENT_TIME, json.dumps(draw(st.sampled_from(TIMESTAMPS[:7])))))
    clean = all(not (text in ("NaN",)) for _, text in pairs[:len(FEATURES)]) and _plain_text(record_id, 256) \
        and _plain_text(source_id, 256) and (label is None or _plain_text(label, 64))
    mutations = draw(st.lists(st.sampled_from(
        ["value", "number", "drop", "add", "duplicate", "null", "time", "reorder"]), max_size=4))
    for mutation in mutations:
        index = draw(st.integers(0, len(pairs) - 1))
        key = pairs[index][0]
        if mutation == "value":
            pairs[index] = (key, json.dumps(draw(json_values), allow_nan=False))
        elif mutation == "number":
            pairs[index] = (key, draw(st.sampled_from(EXTREME_NUMBER_TEXT)))
        elif mutation == "drop":
            pairs.pop(index)
        elif mutation == "add":
            pairs.append((draw(st.text(max_size=12)), json.dumps(draw(json_values), allow_nan=False)))
        elif mutation == "duplicate":
            pairs.append((key, draw(st.sampled_from(EXTREME_NUMBER_TEXT + ['"x"', "null", "{}"]))))
        elif mutation == "null":
            pairs[index] = (key, "null")
        elif mutation == "time":
            pairs.append((EVENT_TIME, json.dumps(draw(st.sampled_from(TIMESTAMPS)))))
        else:
            pairs = draw(st.permutations(pairs))
    text = _object_text(pairs)
    return text.encode("utf-8", "surrogatepass"), clean and not mutations


@st.composite
def messages(draw) -> tuple[bytes | None, bool]:
    """One Kafka message value: a record, mutated or not, or bytes that are no record at all."""
    kind = draw(st.sampled_from(["record", "record", "record", "bytes", "tombstone", "trailing", "truncated",
                                 "flipped", "huge", "json", "whitespace"]))
    if kind == "tombstone":
        return None, False
    if kind == "bytes":
        return draw(st.binary(max_size=64)), False
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), False
    record, clean = draw(records())
    if kind == "trailing":
        return record + draw(st.sampled_from([b" x", b"{}", b"\n" + record, record, b"]", b"\x00"])), False
    if kind == "truncated":
        return record[:draw(st.integers(0, max(0, len(record) - 1)))], False
    if kind == "flipped":
        position = draw(st.integers(0, len(record) - 1))
        return record[:position] + bytes([draw(st.integers(0, 255))]) + record[position + 1:], False
    if kind == "huge":
        return record[:-1] + b', "padding": "' + b"x" * draw(st.integers(10_000, 300_000)) + b'"}', False
    if kind == "whitespace":
        return b" \t\r\n" + record + b"\n ", clean
    return record, clean


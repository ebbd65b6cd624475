"""On the executors: one partition's scored records counted per bin of the champion's drift
reference, per hour of event time and device group (pure NumPy/pyarrow; the records stay here, the
driver gets only these counts: a few hundred small rows however many records).

Every record counts in the group ``all``; a record whose device the sensor named counts also in its
device group (``drift.group_by``): ``vendor:<device_vendor>`` (``vendor:unknown`` without one) or
``device:<device_id>``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models.drift import NO_BIN, SCORE_MEASURE
from schemas.flow_record import column_name
from schemas.tables import TIMESTAMP

if TYPE_CHECKING:
    from models.drift import DriftReference

log = logging.getLogger(__name__)

ALL_DEVICES: Final[str] = "all"
UNKNOWN_VENDOR: Final[str] = "unknown"
COUNTS_SCHEMA: Final[pa.Schema] = pa.schema([
    pa.field("hour", TIMESTAMP), pa.field("device_group", pa.string()), pa.field("model_version", pa.string()),
    pa.field("measure", pa.string()), pa.field("bin", pa.int32()), pa.field("count", pa.int64())])


def measure_column(measure: str) -> str:
    """The ``flows_scored`` column of a reference measure (a dataset feature name, or the score)."""
    return SCORE_MEASURE if measure == SCORE_MEASURE else column_name(measure)


def empty_counts() -> pa.Table:
    return COUNTS_SCHEMA.empty_table()


def device_groups(scored: pa.Table, group_by: str) -> pa.Array:
    """Each record's device group (null where the record names no device, or ``group_by`` is ``none``)."""
    if group_by == "none" or "device_id" not in scored.column_names:
        return pa.nulls(scored.num_rows, pa.string())
    devices = scored["device_id"].combine_chunks().cast(pa.string())
    if group_by == "device":
        return pc.binary_join_element_wise("device:", devices, "")
    vendors = pc.fill_null(scored["device_vendor"].combine_chunks().cast(pa.string()), UNKNOWN_VENDOR)
    named = pc.binary_join_element_wise("vendor:", vendors, "")
    return pc.if_else(pc.is_valid(devices), named, pa.scalar(None, pa.string()))


def partition_counts(scored: pa.Table, reference: "DriftReference", model_version: str,
                     group_by: str = "vendor") -> pa.Table:
    """``scored`` (a partition's ``flows_scored`` rows) as counts per (hour, device group, measure,
    bin) of ``reference``; bins without a record are left out."""
    if scored.num_rows == 0:
        return empty_counts()
    hours = pc.floor_temporal(pc.cast(scored["event_time"], TIMESTAMP), unit="hour").cast(pa.int64())
    hours = hours.combine_chunks().to_numpy(zero_copy_only=False)
    groups = device_groups(scored, group_by)
    # every record once in "all", and once more in its device group where it has one
    in_group = np.flatnonzero(pc.is_valid(groups).to_numpy(zero_copy_only=False))
    rows = np.r_[np.arange(scored.num_rows), in_group]
    labels = pa.concat_arrays([pa.array([ALL_DEVICES] * scored.num_rows, pa.string()), groups.take(in_group)])
    encoded = labels.dictionary_encode()
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pairs, keys = np.unique(hours[rows] * len(names) + codes, return_inverse=True)
    out_hour, out_group, out_measure, out_bin, out_count = [], [], [], [], []
    for measure, distribution in reference.measures.items():
        values = scored[measure_column(measure)].combine_chunks().to_numpy(zero_copy_only=False)
        bins = distribution.bin_of(np.asarray(values, dtype=np.float64))[rows]
        width = distribution.bins
        flat_bins = keys * width + bins
        if (bins == NO_BIN).any():  # a missing value is in no bin
            flat_bins = flat_bins[bins != NO_BIN]
        counts = np.bincount(flat_bins, minlength=len(pairs) * width)
        flat = np.flatnonzero(counts)
        pair, bin_ = np.divmod(flat, width)
        out_hour.append(pairs[pair] // len(names))
        out_group.append(pairs[pair] % len(names))
        out_measure += [measure_column(measure)] * len(flat)
        out_bin.append(bin_)
        out_count.append(counts[flat])
    group_index = np.concatenate(out_group)
    return pa.table({"hour": pa.array(np.concatenate(out_hour), pa.int64()).cast(TIMESTAMP),
                     "device_group": pa.array(names, pa.string()).take(pa.array(group_index)),
                     "model_version": pa.array([model_version] * len(group_index), pa.string()),
                     "measure": pa.array(out_measure, pa.string()),
                     "bin": pa.array(np.concatenate(out_bin), pa.int32()),
                     "count": pa.array(np.concatenate(out_count), pa.int64())}, schema=COUNTS_SCHEMA)


_REFERENCES: dict[tuple[str, str, int], "DriftReference | None"] = {}


def bundle_reference(bundle) -> "DriftReference | None":
    """The drift reference of a loaded bundle (parsed once per Python worker), None without one."""
    from models.drift import drift_reference_of

    key = (str(bundle.path), bundle.version, id(bundle.manifest))  # a reloaded bundle is parsed again
    if key not in _REFERENCES:
        _REFERENCES[key] = drift_reference_of(bundle.manifest)
        if _REFERENCES[key] is None:
            log.info("bundle %s at %s has no drift reference: no drift counted for its records", bundle.version,
                     bundle.path)
    return _REFERENCES[key]


def task_counts(flows_scored: pa.Table, bundle_dir: str, trust, group_by: str) -> pa.Table | None:
    """A task's drift counts for the champion that scored it (the worker's cached bundle, loaded with
    ``trust`` as scoring loaded it); None when the bundle has no drift reference."""
    from udfs.model_cache import get_bundle

    bundle = get_bundle(bundle_dir, trust)
    reference = bundle_reference(bundle)
    if reference is None:
        return None
    return partition_counts(flows_scored, reference, bundle.version, group_by)

"""What a JVM's heap holds, by class, read with the JDK's ``jcmd <pid> GC.class_histogram``.

The soak takes one histogram early and one at the end: the classes whose bytes grew most between
the two say what the job accumulates (Spark's status store, Delta's snapshots, ...), where the GC
log can only say that the live heap grew. ``GC.class_histogram`` runs a full collection first, so
it counts live objects only; it pauses the JVM for that collection (well under a second at the
soak's heap sizes).
"""
from __future__ import annotations

import re
from typing import NamedTuple

from jobs.bench.jvm_threads import run_jcmd

_ROW = re.compile(r"^\s*\d+:\s+(?P<instances>\d+)\s+(?P<bytes>\d+)\s+(?P<name>\S+)", re.MULTILINE)


class ClassUse(NamedTuple):
    instances: int
    bytes: int


def parse_class_histogram(text: str) -> dict[str, ClassUse]:
    """Instances and bytes per class name in a ``GC.class_histogram`` listing."""
    return {m["name"]: ClassUse(int(m["instances"]), int(m["bytes"])) for m in _ROW.finditer(text)}


def class_histogram(pid: int) -> dict[str, ClassUse] | None:
    """The live heap of JVM ``pid`` by class; None when jcmd is missing or fails."""
    listing = run_jcmd(pid, "GC.class_histogram", timeout_s=120)
    return parse_class_histogram(listing) if listing is not None else None


def largest_growth(before: dict[str, ClassUse], after: dict[str, ClassUse], top: int = 15) -> list[dict[str, object]]:
    """The ``top`` classes whose bytes grew most from ``before`` to ``after`` (MiB and instances)."""
    names = set(before) | set(after)
    grown = sorted(names, key=lambda n: after.get(n, ClassUse(0, 0)).bytes - before.get(n, ClassUse(0, 0)).bytes,
                   reverse=True)
    rows = []
    for name in grown[:top]:
        old, new = before.get(name, ClassUse(0, 0)), after.get(name, ClassUse(0, 0))
        if new.bytes <= old.bytes:
            break
        rows.append({"class": name, "mib_before": round(old.bytes / 2**20, 1), "mib_after": round(new.bytes / 2**20, 1),
                     "instances_before": old.instances, "instances_after": new.instances})
    return rows


def total_mib(histogram: dict[str, ClassUse]) -> float:
    return round(sum(use.bytes for use in histogram.values()) / 2**20, 1)

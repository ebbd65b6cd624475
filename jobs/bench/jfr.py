"""Summarise a Java Flight Recorder file's execution samples: where Spark's task threads spend
their CPU. ``jfr print --json`` (the JDK's own tool) reads the file; samples of threads other than
Spark's task threads (driver, JIT, GC, the recorder itself) are left out.

Two views: the top frame of each sample (self time, by method) and the share of samples whose
stack holds a given part anywhere (inclusive, by class and by a few named parts). Task threads
(the records' work) and the other threads (chiefly the driver planning each query: Catalyst's
analyser and optimiser, code generation) are summarised apart.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

TASK_THREAD = "Executor task launch worker"
STACK_DEPTH = 64  # the recorder's default depth: deeper frames (the thread's root) are cut anyway

# (name, class-name prefixes): a sample counts for a part when any frame's class starts with one
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Jackson (JSON tokenizer)", ("com.fasterxml.jackson.",)),
    ("Spark JSON reader (from_json, JacksonParser)", ("org.apache.spark.sql.catalyst.json.",
                                                      "org.apache.spark.sql.catalyst.expressions.JsonToStructs")),
    ("Avro decoder (from_avro)", ("org.apache.avro.", "org.apache.spark.sql.avro.")),
    ("in-memory columnar cache scan", ("org.apache.spark.sql.execution.columnar.",)),
    ("regular expressions", ("java.util.regex.",)),
    ("timestamp parsing", ("java.time.format.", "org.apache.spark.sql.catalyst.util.Iso8601TimestampFormatter",
                           "org.apache.spark.sql.catalyst.util.DateTimeUtils")),
    ("generated code (whole-stage)", ("org.apache.spark.sql.catalyst.expressions.GeneratedClass",)),
    ("noop sink / write path", ("org.apache.spark.sql.execution.datasources.noop.",
                                "org.apache.spark.sql.execution.datasources.v2.DataWritingSparkTask")),
    ("Catalyst optimiser", ("org.apache.spark.sql.catalyst.optimizer.",)),
    ("Catalyst analyser", ("org.apache.spark.sql.catalyst.analysis.",)),
    ("code generation and its compiler", ("org.apache.spark.sql.catalyst.expressions.codegen.", "org.codehaus.janino.",
                                          "org.codehaus.commons.compiler.")),
)


def dump(pid: int, recording: Path) -> None:
    """Write the running JVM's flight recording to ``recording`` (``jcmd PID JFR.dump``): pyspark's
    JVM outlives ``SparkSession.stop()``, so a dump at exit comes too late for this process."""
    tool = shutil.which("jcmd")
    if tool is None:
        raise FileNotFoundError("the JDK's `jcmd` tool is not on PATH (it comes with the JDK: openjdk-17-jdk-headless)")
    subprocess.run([tool, str(pid), "JFR.dump", f"filename={recording}"], capture_output=True, text=True, check=True)


def _frames(event: dict[str, Any]) -> list[str]:
    trace = (event.get("values") or {}).get("stackTrace") or {}
    out = []
    for frame in trace.get("frames") or []:
        method = frame.get("method") or {}
        type_name = (method.get("type") or {}).get("name", "?").replace("/", ".")  # JVM names: java/lang/String
        out.append(f"{type_name}.{method.get('name', '?')}")
    return out


def _thread(event: dict[str, Any]) -> str:
    thread = (event.get("values") or {}).get("sampledThread") or {}
    return thread.get("javaName") or thread.get("osName") or ""


def _summary(stacks: list[list[str]], top: int) -> dict[str, Any]:
    n = len(stacks)

    def share(count: int) -> float:
        return round(100.0 * count / n, 1) if n else 0.0

    self_time = Counter(s[0] for s in stacks)
    inclusive_classes = Counter(c for s in stacks for c in {f.rsplit(".", 1)[0] for f in s})
    parts = {name: sum(1 for s in stacks if any(f.startswith(prefixes) for f in s)) for name, prefixes in PARTS}
    return {"samples": n,
            "self_top_methods_percent": {m: share(c) for m, c in self_time.most_common(top)},
            "inclusive_top_classes_percent": {c: share(k) for c, k in inclusive_classes.most_common(top)},
            "inclusive_parts_percent": {name: share(c) for name, c in parts.items() if c}}


def summarise(recording: Path, top: int = 20) -> dict[str, Any]:
    """Self and inclusive shares of the execution samples in ``recording``: Spark's task threads
    and the other threads apart."""
    tool = shutil.which("jfr")
    if tool is None:
        raise FileNotFoundError("the JDK's `jfr` tool is not on PATH (it comes with the JDK: openjdk-17-jdk-headless)")
    done = subprocess.run([tool, "print", "--json", "--stack-depth", str(STACK_DEPTH), "--events",
                           "jdk.ExecutionSample", str(recording)], capture_output=True, text=True, check=True)
    events = json.loads(done.stdout)["recording"]["events"]
    task, other = [], []
    for event in events:
        frames = _frames(event)
        if frames:
            (task if _thread(event).startswith(TASK_THREAD) else other).append(frames)
    return {"all_samples": len(events), "task_threads": _summary(task, top), "other_threads": _summary(other, top)}


def format_summary(summary: dict[str, Any], top: int = 10) -> str:
    lines = [f"JFR: {summary['all_samples']} execution samples"]
    for group in ("task_threads", "other_threads"):
        part = summary[group]
        lines.append(f"  {group.replace('_', ' ')}: {part['samples']} samples; inclusive (the part anywhere on the stack):")
        lines += [f"    {p:5.1f}%  {name}" for name, p in part["inclusive_parts_percent"].items()]
        lines.append("   self (top frame):")
        lines += [f"    {p:5.1f}%  {m}" for m, p in list(part["self_top_methods_percent"].items())[:top]]
    return "\n".join(lines)

"""CPU time of a JVM's threads by role, read with the JDK's ``jcmd <pid> Thread.print`` (each thread's
line carries ``cpu=<ms>`` since JDK 11).

In Spark's local mode one JVM is both the driver and the executor, so its process CPU cannot say
what the driver costs. Its threads can: tasks run on ``Executor task launch worker`` threads; the
JVM's own garbage collection and JIT compilation run on theirs (shared by both roles); every other
thread (the stream execution thread that plans and commits each micro-batch, the DAG scheduler,
RPC dispatchers, listeners, Py4J's) is the driver's.

Threads that ended between two readings take their CPU with them: executor task threads end after
a minute idle, so ``executor`` is a floor; the driver's threads live as long as the query.
"""
from __future__ import annotations

import re
import shutil
import subprocess

EXECUTOR, JVM_RUNTIME, DRIVER = "executor", "jvm_runtime", "driver"
_THREAD = re.compile(r'^"(?P<name>[^"]*)".*?\bcpu=(?P<cpu>[0-9.]+)ms', re.MULTILINE)
_RUNTIME = ("GC ", "G1 ", "C1 CompilerThread", "C2 CompilerThread", "VM Thread", "VM Periodic Task Thread",
            "Sweeper thread", "Service Thread", "Monitor Deflation Thread", "Common-Cleaner", "Signal Dispatcher",
            "Finalizer", "Reference Handler", "Notification Thread", "Attach Listener")


def thread_role(name: str) -> str:
    """Which role a JVM thread works for, by its name."""
    if name.startswith("Executor task launch worker"):
        return EXECUTOR
    if name.startswith(_RUNTIME):
        return JVM_RUNTIME
    return DRIVER


def parse_thread_dump(text: str) -> dict[str, float]:
    """CPU seconds by role (:func:`thread_role`) in a ``Thread.print`` dump."""
    totals = {EXECUTOR: 0.0, JVM_RUNTIME: 0.0, DRIVER: 0.0}
    for match in _THREAD.finditer(text):
        totals[thread_role(match["name"])] += float(match["cpu"]) / 1000.0
    return totals


def run_jcmd(pid: int, command: str, timeout_s: float = 60.0) -> str | None:
    """What ``jcmd <pid> <command>`` prints; None when jcmd is missing or fails."""
    jcmd = shutil.which("jcmd")
    if not jcmd:
        return None
    try:
        out = subprocess.run([jcmd, str(pid), command], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def cpu_by_role(pid: int) -> dict[str, float] | None:
    """CPU seconds the JVM ``pid``'s live threads have used, by role; None when jcmd is missing or fails."""
    dump = run_jcmd(pid, "Thread.print")
    return parse_thread_dump(dump) if dump is not None else None


def used_between(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float] | None:
    """CPU seconds by role between two readings (a role's threads that ended make it a floor)."""
    if before is None or after is None:
        return None
    return {role: max(after[role] - before.get(role, 0.0), 0.0) for role in after}

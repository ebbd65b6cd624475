"""Peak memory of the benchmark's process tree, sampled from a process of its own.

``python -m jobs.bench.resource_sampler --root PID [--interval S] [--exclude PID ...]`` samples the
resident memory of ``PID`` (the driver) and its descendants every ``S`` seconds until its standard
input closes; each line ``summary`` it reads is answered with one line of JSON (the peaks so far).

It runs beside the driver, not in a thread of it: reading a process's proportional set size walks
its page tables (``/proc/PID/smaps_rollup``: about 8 ms for the Spark JVM on this machine kind, every
0.5 s for each process), and in a thread that CPU was counted as the driver's own
(``e2e.driver_us_per_record`` read 4 us a record higher than the driver spent). As a process of its
own it is a measurement tool (``jobs.bench.e2e.process_kind``): left out of the job's CPU and
memory alike.
"""
from __future__ import annotations

import argparse
import json
import select
import sys
from typing import Any

import psutil

from jobs.bench.e2e import LOAD_GENERATOR, MEASUREMENT_TOOL, process_kind


class PeakMemory:
    """The peaks over the samples taken so far."""

    def __init__(self, root: int, exclude: set[int]) -> None:
        self.root = psutil.Process(root)
        self.exclude = set(exclude)
        self.peak_total_mb = 0.0
        self.peak_load_generator_mb = 0.0
        self.peak_pss_mb = 0.0
        self.max_processes: dict[str, int] = {}
        self.peak_by_kind: dict[str, float] = {}
        self.cpu_samples: list[float] = []
        psutil.cpu_percent(None)

    def sample(self) -> None:
        by_kind: dict[str, float] = {}
        pss_total = 0.0
        counts: dict[str, int] = {}
        excluded = set(self.exclude)
        for pid in self.exclude:
            try:
                excluded.update(child.pid for child in psutil.Process(pid).children(recursive=True))
            except psutil.Error:
                pass
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:  # the root has ended
            return
        for proc in tree:
            if proc.pid in excluded:
                continue
            try:
                kind = process_kind(proc.pid == self.root.pid, proc.name(), " ".join(proc.cmdline()))
                if kind == MEASUREMENT_TOOL:
                    continue
                memory = proc.memory_full_info()  # rss, and pss: shared pages split among sharers
            except psutil.Error:
                continue
            rss = memory.rss / 2**20
            if kind == LOAD_GENERATOR:  # the replayer feeds the job: not part of it
                self.peak_load_generator_mb = max(self.peak_load_generator_mb, rss)
                continue
            by_kind[kind] = by_kind.get(kind, 0.0) + rss
            pss_total += getattr(memory, "pss", memory.rss) / 2**20
            counts[kind] = counts.get(kind, 0) + 1
        self.peak_total_mb = max(self.peak_total_mb, sum(by_kind.values()))
        self.peak_pss_mb = max(self.peak_pss_mb, pss_total)
        for kind, n in counts.items():
            self.max_processes[kind] = max(self.max_processes.get(kind, 0), n)
        for kind, mb in by_kind.items():
            self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0.0), mb)
        self.cpu_samples.append(psutil.cpu_percent(None))

    def summary(self) -> dict[str, Any]:
        cpu = self.cpu_samples
        return {"peak_rss_mb": round(self.peak_total_mb, 1),
                "peak_pss_mb": round(self.peak_pss_mb, 1),
                "max_processes": dict(self.max_processes),
                "peak_rss_mb_by_process": {k: round(v, 1) for k, v in self.peak_by_kind.items()},
                "peak_rss_mb_replayer_not_counted": round(self.peak_load_generator_mb, 1),
                "mean_cpu_percent_of_machine": round(sum(cpu) / len(cpu), 1) if cpu else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench.resource_sampler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=int, required=True, help="the driver's pid")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--exclude", type=int, nargs="*", default=[], help="pids left out, with their children")
    args = parser.parse_args(argv)
    peaks = PeakMemory(args.root, set(args.exclude))
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], args.interval)
        if readable:
            line = sys.stdin.readline()
            if not line:  # the driver closed the pipe: done
                return 0
            if line.strip() == "summary":
                print(json.dumps(peaks.summary()), flush=True)
            continue
        peaks.sample()


if __name__ == "__main__":
    sys.exit(main())

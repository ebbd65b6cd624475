"""Throughput and memory of the sensor on one core: a real capture looped to millions of packets.

The capture's packets are written again and again into one pcap, each loop shifted in time past the
sensor's idle expiry and, for the many-devices run, with its own MAC addresses (each loop's devices
are new devices). A fresh interpreter pinned to one core then runs the sensor over it three ways:
capture to closed windows, to JSON records, and (with a broker) to Kafka. It reports packets/s,
records/s, the peak RSS and the most devices held open at once.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CAPTURE = REPO.parent / "shared" / "data" / "pcap" / "mqttset-reduced" / "malformed.pcap"  # Ethernet
LOOP_GAP_S = 1000.0  # longer than the sensor's idle expiry (600 s): each loop's devices are forgotten


def looped_capture(source: Path, out: Path, packets: int, new_devices_each_loop: bool) -> int:
    """Write ``out``: ``source`` (an Ethernet capture) repeated until it holds ``packets`` packets."""
    import pcapy

    handle = pcapy.open_offline(str(source))
    if handle.datalink() != 1:
        raise ValueError(f"{source}: the looped benchmark takes an Ethernet capture")
    records: list[tuple[float, bytes]] = []
    while True:
        header, data = handle.next()
        if header is None:
            break
        seconds, micros = header.getts()
        records.append((seconds + micros * 1e-6, bytes(data)))
    span = records[-1][0] - records[0][0] + LOOP_GAP_S
    written = 0
    with out.open("wb") as handle_out:
        handle_out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        loop = 0
        while written < packets:
            tag = struct.pack(">I", loop)[1:]  # three bytes: each loop's MACs differ
            for ts, frame in records:
                if written >= packets:
                    break
                if new_devices_each_loop and len(frame) >= 12:
                    frame = frame[:3] + tag + frame[6:9] + tag + frame[12:]
                t = ts + loop * span
                seconds = int(t)
                handle_out.write(struct.pack("<IIII", seconds, int((t - seconds) * 1e6), len(frame), len(frame)) + frame)
                written += 1
            loop += 1
    return written


def measure_in_process(capture: str, mode: str, bootstrap: str | None = None) -> dict[str, Any]:
    """In this (pinned) process: run the sensor over ``capture``; ``mode`` windows, records or kafka."""
    import resource
    import time

    from jobs.sensor.capture import CaptureReport, read_files
    from jobs.sensor.command import sense
    from jobs.sensor.records import json_lines, record_frame
    from jobs.sensor.windows import Windower

    windower = Windower()
    report = CaptureReport(source=capture)
    counts = {"windows": 0, "records": 0, "max_open_devices": 0}
    sink = None
    if mode == "kafka":
        from jobs.publish import KafkaSink

        sink = KafkaSink(bootstrap, "bench-sensor")

    def emit(windows) -> None:
        counts["windows"] += len(windows)
        counts["max_open_devices"] = max(counts["max_open_devices"], windower.open_devices)
        if mode == "windows":
            return
        frame = record_frame(windows)
        lines = json_lines(frame)
        counts["records"] += len(lines)
        if sink is not None:
            for key, line in zip(frame["device_id"], lines):
                sink.send(key, line.encode())

    started = time.perf_counter()
    sense(read_files([Path(capture)], report), windower, emit)
    if sink is not None:
        sink.close()
    seconds = time.perf_counter() - started
    return {"mode": mode, "packets": report.packets, "seconds": round(seconds, 2),
            "packets_per_s": round(report.packets / seconds), "records_per_s": round(counts["records"] / seconds),
            "windows": counts["windows"], "max_open_devices": counts["max_open_devices"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure(capture: Path, mode: str, bootstrap: str | None = None, core: int = 0) -> dict[str, Any]:
    """:func:`measure_in_process` in a fresh interpreter pinned to one core."""
    code = ("import json, os; os.sched_setaffinity(0, {%d}); from jobs.bench.sensor import measure_in_process as m; "
            "print('RESULT' + json.dumps(m(%r, %r, %r)))" % (core, str(capture), mode, bootstrap))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"sensor benchmark failed:\n{done.stderr[-3000:]}")
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))[len("RESULT"):])


def sensor_part(work: Path, packets: int, bootstrap: str | None = None, source: Path = DEFAULT_CAPTURE) -> dict[str, Any]:
    """The figures of the benchmark's sensor section."""
    work.mkdir(parents=True, exist_ok=True)
    same, many = work / "looped.pcap", work / "looped-many-devices.pcap"
    looped_capture(source, same, packets, new_devices_each_loop=False)
    looped_capture(source, many, packets, new_devices_each_loop=True)
    runs = {"windows": measure(same, "windows"), "records": measure(same, "records"),
            "many_devices_records": measure(many, "records")}
    if bootstrap:
        runs["kafka"] = measure(same, "kafka", bootstrap)
    for path in (same, many):
        path.unlink()
    return {"capture": source.name, "packets": packets, **runs}

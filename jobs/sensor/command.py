"""``iomt-ad sensor``: packets (capture files or a live interface) -> per-device windows -> the 39
features -> flow records for the streaming job (Kafka, keyed by device, or a directory), or an
offline report of a capture scored with a bundle.

    iomt-ad sensor --pcap FILE... --bootstrap HOST:PORT [--topic T]      # feed the running job
    iomt-ad sensor --pcap FILE... --bootstrap ... --wire-format avro      # Avro (Confluent wire format)
    iomt-ad sensor --pcap FILE... --to-dir var/incoming                   # the embedded default
    iomt-ad sensor --pcap FILE... --report OUT.json [--model DIR]         # analyse a capture offline
    iomt-ad sensor --interface eth0 [--bpf 'not port 22'] --bootstrap ... # live (root or capabilities)
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.publish import add_kafka_security_argument, add_wire_format_arguments
from jobs.sensor.capture import CaptureReport, PacketBatch, read_files, read_live, skip_packets
from jobs.sensor.decode import decode
from jobs.sensor.devices import DEFAULT_GATEWAY_IPS, DEFAULT_HOME_NETS, DeviceRegistry
from jobs.sensor.records import json_lines, messages, record_frame
from jobs.sensor.windows import DEFAULT_IDLE_S, DEFAULT_TIMEOUT_S, DEFAULT_WINDOW, Windower, Windows
from models import DEFAULT_BUNDLE

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "iomt_traffic_stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pcap", nargs="+", type=Path, metavar="FILE", help="capture files (pcap or pcapng), or directories of them")
    source.add_argument("--interface", help="capture live on this interface (needs root or cap_net_raw)")
    parser.add_argument("--bpf", help="a BPF filter applied by libpcap, e.g. 'not port 22'")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--bootstrap", metavar="HOST:PORT", help="publish the records to this Kafka broker")
    out.add_argument("--to-dir", type=Path, help="write the records as JSON-lines files into this directory")
    out.add_argument("--report", type=Path, metavar="OUT.json",
                     help="score the capture offline and write a per-device report (no broker, no Spark)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"Kafka topic (default {DEFAULT_TOPIC})")
    add_kafka_security_argument(parser)
    add_wire_format_arguments(parser)
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help=f"bundle for --report (default {DEFAULT_BUNDLE})")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help=f"packets per window and device (default {DEFAULT_WINDOW})")
    parser.add_argument("--window-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"close a window after this many seconds even if not full (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_S,
                        help=f"forget a device silent for this many seconds (default {DEFAULT_IDLE_S:g})")
    parser.add_argument("--home-net", nargs="+", default=list(DEFAULT_HOME_NETS), metavar="CIDR",
                        help="the networks whose endpoints are devices (default: private and link-local ranges)")
    parser.add_argument("--gateway-ips", type=int, default=DEFAULT_GATEWAY_IPS,
                        help="a MAC seen with more home addresses than this is a router's "
                             f"(default {DEFAULT_GATEWAY_IPS})")
    parser.add_argument("--label", help="the true class of every record (a labelled capture)")


@dataclass
class SensorResult:
    capture: CaptureReport
    records: int = 0
    devices: set[str] = field(default_factory=set)
    seconds: float = 0.0


def sense(batches: Iterator[PacketBatch], windower: Windower, emit, live: bool = False) -> None:
    """Feed every batch through the windower; ``emit(windows)`` gets each group of closed windows."""
    for batch in batches:
        closed = windower.add(decode(batch)) if len(batch) else windower.tick(time.time() if live else windower.clock)
        if closed is not None and len(closed):
            emit(closed)
    closed = windower.finish()
    if closed is not None and len(closed):
        emit(closed)


def run(args: argparse.Namespace) -> int:
    registry = DeviceRegistry(home_nets=args.home_net, gateway_ips=args.gateway_ips)
    windower = Windower(registry=registry, size=args.window, timeout_s=args.window_timeout, idle_s=args.idle)
    report = CaptureReport(source=args.interface or ", ".join(map(str, args.pcap)))
    batches = (read_live(args.interface, report, args.bpf) if args.interface
               else read_files(args.pcap, report, args.bpf))
    result = SensorResult(capture=report)
    started = time.monotonic()
    if args.report:
        frames = []

        def keep(windows: Windows) -> None:
            frames.append(record_frame(windows, args.label))

        _run_until_stopped(batches, windower, keep, bool(args.interface))
        _write_report(args, frames, report, time.monotonic() - started)
        return 0 if report.damage is None else 1
    from jobs.publish import DirectorySink, kafka_sink, wire_choice
    from jobs.wire import message_encoder

    wire_format, schema_id = wire_choice(args)
    encode = None if wire_format == "json" else message_encoder(wire_format, schema_id)  # None: JSON lines
    sink = kafka_sink(args.bootstrap, args.topic, args.conf) if args.bootstrap else DirectorySink(args.to_dir)

    def publish(windows: Windows) -> None:
        frame = record_frame(windows, args.label)
        if encode is None:
            for key, line in zip(frame["device_id"], json_lines(frame)):
                sink.send(key, line.encode("utf-8"))
        else:
            for key, message in zip(frame["device_id"], messages(frame)):
                sink.send(key, encode(message))
        result.records += len(frame)
        result.devices.update(windows.device)

    try:
        _run_until_stopped(batches, windower, publish, bool(args.interface))
    finally:
        sink.close()
    result.seconds = time.monotonic() - started
    log.info("%d packets -> %d records of %d devices in %.1f s (%s)", report.packets, result.records,
             len(result.devices), result.seconds, args.bootstrap and f"Kafka {args.bootstrap}/{args.topic}"
             or f"files in {args.to_dir}")
    return 0 if report.damage is None else 1


def capture_records(paths: list[Path], window: int = DEFAULT_WINDOW, home_nets: list[str] | None = None,
                    label: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                    skip: int = 0) -> tuple["pd.DataFrame", CaptureReport]:
    """Every window of capture files as wire records (one frame), and what the capture held;
    ``skip``: the first packets left out (windows then start elsewhere in the traffic)."""
    import pandas as pd

    registry = DeviceRegistry(home_nets=home_nets or list(DEFAULT_HOME_NETS))
    windower = Windower(registry=registry, size=window, timeout_s=timeout_s)
    report = CaptureReport(source=", ".join(map(str, paths)))
    frames = []
    sense(skip_packets(read_files(list(paths), report), skip), windower, lambda w: frames.append(record_frame(w, label)))
    return (pd.concat(frames, ignore_index=True) if frames else record_frame(_no_windows(), label)), report


def _run_until_stopped(batches, windower: Windower, emit, live: bool) -> None:
    try:
        sense(batches, windower, emit, live=live)
    except KeyboardInterrupt:  # a live capture ends with Ctrl-C: close and send the open windows
        log.info("stopping: closing the open windows")
        closed = windower.finish()
        if closed is not None and len(closed):
            emit(closed)


def _write_report(args: argparse.Namespace, frames: list, capture: CaptureReport, seconds: float) -> None:
    import pandas as pd

    from jobs.sensor.report import device_report, score_records, summary
    from udfs.model_cache import get_bundle

    bundle = get_bundle(args.model)
    frame = pd.concat(frames, ignore_index=True) if frames else record_frame(_no_windows())
    scored = score_records(frame, bundle) if len(frame) else frame.assign(is_anomaly=[], predicted_class=[],
                                                                           severity=[])
    payload = {
        "captures": capture.files, "packets": capture.packets, "capture_error": capture.damage,
        "model_version": bundle.version, "window_packets": args.window, "seconds": round(seconds, 2),
        "total": summary(scored), "devices": device_report(scored) if len(scored) else [],
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    log.info("report: %d packets, %d windows of %d devices, %s flagged -> %s", capture.packets,
             payload["total"]["windows"], len(payload["devices"]), payload["total"]["share_flagged"], args.report)


def _no_windows() -> Windows:
    import numpy as np

    from schemas.flow_record import FEATURES

    empty = np.empty(0)
    return Windows(features={name: empty for name in FEATURES}, device=[], device_mac=[], device_ip=[],
                   device_vendor=[], peer_ip=[], transport=[], device_port=[], peer_port=[], first_ts=empty,
                   last_ts=empty, sequence=np.empty(0, np.int64))

"""Packets in, in batches: capture files (pcap, pcapng) or a live interface, read by libpcap through
pcapy-ng (its wheels carry libpcap; ``next_batch`` hands over thousands of packets per call, with
their timestamps, as one buffer: no Python object per packet).

Reading a file that ends in a cut-off record (a capture copied while written, or truncated) keeps
every packet before the damage and reports the damage as a :class:`CaptureError` once the good part
has been handed over (``CaptureReport.error``).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jobs.errors import UserError

log = logging.getLogger(__name__)

BATCH_PACKETS = 65536
SNAPLEN = 65535

# link-layer types (LINKTYPE_* of the pcap format) the decoder understands
ETHERNET, RAW_IP, LINUX_SLL, LINUX_SLL2, RAW_IPV4, RAW_IPV6 = 1, 101, 113, 276, 228, 229
LINK_TYPES: dict[int, str] = {ETHERNET: "Ethernet", RAW_IP: "raw IP", LINUX_SLL: "Linux cooked capture v1",
                              LINUX_SLL2: "Linux cooked capture v2", RAW_IPV4: "raw IPv4", RAW_IPV6: "raw IPv6",
                              12: "raw IP"}


class CaptureError(UserError):
    """A capture that cannot be opened or read; the message names the file and the problem."""


@dataclass(frozen=True)
class PacketBatch:
    """Up to ``BATCH_PACKETS`` packets: ``data`` holds them back to back, packet ``i`` is
    ``data[offset[i]:offset[i] + caplen[i]]``, captured at ``ts[i]`` (seconds since the epoch)."""

    link_type: int
    ts: np.ndarray        # float64
    offset: np.ndarray    # int64
    caplen: np.ndarray    # int64
    data: np.ndarray      # uint8

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class CaptureReport:
    """What a source yielded: packets, batches and, for a damaged file, the error after the good part."""

    source: str
    link_type: int | None = None
    packets: int = 0
    error: str | None = None        # the problem of the file being read (moved to ``errors`` after it)
    errors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def damage(self) -> str | None:
        """Every problem met, joined; None when every source was read whole."""
        problems = [*self.errors, *([self.error] if self.error else [])]
        return "; ".join(problems) if problems else None


def _check_link_type(handle, source: str, report: CaptureReport) -> int:
    link_type = handle.datalink()
    if link_type not in LINK_TYPES:
        raise CaptureError(f"{source}: link-layer type {link_type} is not supported; the sensor reads "
                           f"{', '.join(sorted(set(LINK_TYPES.values())))}")
    report.link_type = link_type
    return link_type


def _next_batch(handle, link_type: int, source: str, report: CaptureReport, max_packets: int) -> PacketBatch | None:
    """The next batch; an empty one at the end of a file or a live read's timeout; None once a
    damaged file cannot be read further (``report.error`` says why)."""
    import pcapy

    try:
        packets, meta = handle.next_batch(max_packets)
    except pcapy.PcapError as exc:
        report.error = f"{source}: {exc}"
        return None
    fields = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4)
    batch = PacketBatch(link_type=link_type, ts=fields[:, 0] + fields[:, 1] * 1e-6,
                        offset=fields[:, 2].astype(np.int64), caplen=fields[:, 3].astype(np.int64),
                        data=np.frombuffer(packets, dtype=np.uint8))
    report.packets += len(batch)
    return batch


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def capture_files(paths: list[Path]) -> list[Path]:
    """``paths`` with each directory replaced by the capture files in it (``*.pcap``, ``*.pcapng``,
    ``*.cap``, by name); an empty directory is an error, a missing file is reported when read."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
            if not inside:
                raise CaptureError(f"{path}: a directory without capture files ({', '.join(CAPTURE_SUFFIXES)})")
            found.extend(inside)
        else:
            found.append(path)
    return found


def skip_packets(batches: Iterator[PacketBatch], count: int) -> Iterator[PacketBatch]:
    """``batches`` without their first ``count`` packets (as if the capture had started later)."""
    for batch in batches:
        if count >= len(batch):
            count -= len(batch)
            continue
        if count:
            batch = PacketBatch(batch.link_type, batch.ts[count:], batch.offset[count:], batch.caplen[count:], batch.data)
            count = 0
        yield batch


def read_files(paths: list[Path], report: CaptureReport, bpf: str | None = None,
               max_packets: int = BATCH_PACKETS) -> Iterator[PacketBatch]:
    """The packets of capture files, file after file (pcap or pcapng, any supported link type); a
    directory stands for the capture files in it (:func:`capture_files`)."""
    import pcapy

    for path in capture_files(paths):
        if not Path(path).is_file():
            raise CaptureError(f"{path}: no such capture file")
        try:
            handle = pcapy.open_offline(str(path))
        except pcapy.PcapError as exc:
            raise CaptureError(f"{path}: not a pcap or pcapng capture libpcap can read ({exc})") from exc
        if bpf:
            _set_filter(handle, bpf, str(path))
        report.files.append(str(path))
        link_type = _check_link_type(handle, str(path), report)
        delivered = report.packets
        while (batch := _next_batch(handle, link_type, str(path), report, max_packets)) is not None and len(batch):
            yield batch
        if report.error is not None:  # the damaged batch was lost whole: read its good packets one by one
            yield from _salvage(path, link_type, report, bpf, report.packets - delivered)
            report.errors.append(f"{report.error} (the {report.packets - delivered} packets before the damage were read)")
            report.error = None
            log.error("%s", report.errors[-1])


def _salvage(path: Path, link_type: int, report: CaptureReport, bpf: str | None, done: int) -> Iterator[PacketBatch]:
    """The packets of a damaged file after the first ``done`` and before the damage."""
    import pcapy

    handle = pcapy.open_offline(str(path))
    if bpf:
        _set_filter(handle, bpf, str(path))
    skipped = 0
    while skipped < done:
        _, meta = handle.next_batch(min(BATCH_PACKETS, done - skipped))
        skipped += len(meta) // 16
    error, report.error = report.error, None
    good = []
    while (one := _next_batch(handle, link_type, str(path), report, 1)) is not None and len(one):
        good.append(one)
    report.error = report.error or error
    if good:
        offsets = np.cumsum([0] + [len(b.data) for b in good[:-1]])
        yield PacketBatch(link_type=link_type, ts=np.concatenate([b.ts for b in good]),
                          offset=np.concatenate([b.offset + o for b, o in zip(good, offsets)]),
                          caplen=np.concatenate([b.caplen for b in good]),
                          data=np.concatenate([b.data for b in good]))


def read_live(interface: str, report: CaptureReport, bpf: str | None = None, timeout_ms: int = 200,
              max_packets: int = 4096) -> Iterator[PacketBatch]:
    """Packets of a live interface until the caller stops iterating (Ctrl-C). Needs root or, better,
    the capabilities CAP_NET_RAW and CAP_NET_ADMIN on the Python interpreter (docs/sensor.md)."""
    import pcapy

    try:
        handle = pcapy.open_live(interface, SNAPLEN, True, timeout_ms)
    except pcapy.PcapError as exc:
        raise CaptureError(
            f"cannot capture on {interface}: {exc}. Capturing needs root, or the capabilities "
            "cap_net_raw,cap_net_admin on this Python (sudo setcap cap_net_raw,cap_net_admin=eip <python>)") from exc
    if bpf:
        _set_filter(handle, bpf, interface)
    import select

    source = f"live:{interface}"
    report.files.append(source)
    link_type = _check_link_type(handle, source, report)
    # libpcap's own timeout does not end a batch read that found nothing: wait on the descriptor
    # (at most timeout_ms), then read what is there without blocking
    handle.setnonblock(1)
    descriptor = handle.getfd()
    log.info("capturing on %s%s", interface, f" ({bpf})" if bpf else "")
    while True:
        select.select([descriptor], [], [], timeout_ms / 1000)
        batch = _next_batch(handle, link_type, source, report, max_packets)
        if batch is None:
            log.error("%s", report.error)
            return
        yield batch  # empty after a quiet spell: the caller's clock still moves (windows close)


def _set_filter(handle, bpf: str, source: str) -> None:
    import pcapy

    try:
        handle.setfilter(bpf)
    except pcapy.PcapError as exc:
        raise CaptureError(f"{source}: the BPF filter {bpf!r} does not compile: {exc}") from exc

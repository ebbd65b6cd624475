"""Packets -> per-device windows of ``size`` packets -> the 39 features and the device's identity.

Each packet counts for every home device it involves (:mod:`jobs.sensor.devices`). A device's
packets fill its window in capture order; a window closes when it holds ``size`` packets, after
``timeout_s`` without a packet of its device (so a quiet device still reports, and no window spans
a silence), or at the end of the input. The rows of a window still open are carried to the next batch, and a device
idle for ``idle_s`` is forgotten (its open window closed first): memory is bounded by the number of
active devices, whatever the traffic.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from jobs.sensor.decode import Decoded
from jobs.sensor.devices import DeviceRegistry, ip_text, mac_text, vendor_of
from jobs.sensor.features import packet_matrix, window_features
from jobs.sensor.keys import address_words, unique_rows

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 10
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_IDLE_S = 600.0
TRANSPORTS = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 2: "IGMP"}


@dataclass
class Rows:
    """A packet as one device sees it: one row per (packet, home device)."""

    device: np.ndarray      # int64 device id
    ts: np.ndarray          # float64
    matrix: np.ndarray      # float64 (n, len(features.COLUMNS))
    mac: np.ndarray         # uint64: the device's MAC on this packet (0 unknown)
    ip: np.ndarray          # uint8 (n, 16): the device's address
    peer: np.ndarray        # uint8 (n, 16): the other side's address
    proto: np.ndarray       # int64
    port: np.ndarray        # int64: the device's port (0 none)
    peer_port: np.ndarray   # int64

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> "Rows":
        return Rows(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        return Rows(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in Rows.__dataclass_fields__})


@dataclass(frozen=True)
class Windows:
    """Closed windows: the 39 features (arrays) and each window's device identity."""

    features: dict[str, np.ndarray]
    device: list[str]
    device_mac: list[str | None]
    device_ip: list[str | None]
    device_vendor: list[str | None]
    peer_ip: list[str | None]
    transport: list[str | None]
    device_port: list[int | None]
    peer_port: list[int | None]
    first_ts: np.ndarray
    last_ts: np.ndarray
    sequence: np.ndarray    # the window's number among its device's windows (from 0)

    def __len__(self) -> int:
        return len(self.first_ts)


def _rows(packets: Decoded, registry: DeviceRegistry) -> Rows:
    """One row per (packet, home device): the sender's side, then the receiver's."""
    registry.learn(packets.src_mac, packets.src_ip)
    matrix = packet_matrix(packets)
    parts = []
    sender = None
    for mac, ip, peer, port, peer_port in (
            (packets.src_mac, packets.src_ip, packets.dst_ip, packets.sport, packets.dport),
            (packets.dst_mac, packets.dst_ip, packets.src_ip, packets.dport, packets.sport)):
        home = registry.home_mask(ip, senders_only=mac is packets.dst_mac) & (packets.is_ip | packets.is_arp)
        device = registry.device_ids(mac, ip, home)
        if sender is None:
            sender = device
        else:
            device = np.where(device == sender, -1, device)  # a device talking to itself counts once
        keep = np.flatnonzero(device >= 0)
        parts.append(Rows(device=device[keep], ts=packets.ts[keep], matrix=matrix[keep], mac=mac[keep],
                          ip=ip[keep], peer=peer[keep], proto=packets.proto[keep], port=port[keep],
                          peer_port=peer_port[keep]))
    return Rows.concat(parts)


def _mode(window: np.ndarray, codes: np.ndarray, valid: np.ndarray, n_windows: int) -> np.ndarray:
    """The most frequent code of each window among valid rows (-1 where none; ties: the smaller)."""
    result = np.full(n_windows, -1, np.int64)
    if not valid.any():
        return result
    window, codes = window[valid], codes[valid]
    firsts, _, counts = unique_rows(window, codes)
    pair_window, pair_code = window[firsts], codes[firsts]
    order = np.lexsort((pair_code, -counts, pair_window))
    best = order[np.r_[True, pair_window[order][1:] != pair_window[order][:-1]]]
    result[pair_window[best]] = pair_code[best]
    return result


@dataclass
class Windower:
    registry: DeviceRegistry = field(default_factory=DeviceRegistry)
    size: int = DEFAULT_WINDOW
    timeout_s: float = DEFAULT_TIMEOUT_S
    idle_s: float = DEFAULT_IDLE_S
    _carry: Rows | None = None
    _last_ts: dict[int, float] = field(default_factory=dict)
    _sequence: dict[int, int] = field(default_factory=dict)
    clock: float = float("-inf")

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("a window holds at least one packet")

    @property
    def open_devices(self) -> int:
        return len(self._last_ts)

    def add(self, packets: Decoded) -> Windows | None:
        """Take a batch; return the windows it closes."""
        if len(packets):
            self.clock = max(self.clock, float(np.max(packets.ts)))
            rows = _rows(packets, self.registry)
            self._carry = rows if self._carry is None else Rows.concat([self._carry, rows])
        return self._cut(final=False)

    def tick(self, now: float) -> Windows | None:
        """Let time pass without packets (a live capture's timeout): close windows that timed out."""
        self.clock = max(self.clock, now)
        return self._cut(final=False)

    def finish(self) -> Windows | None:
        """The end of the input: close every open window."""
        return self._cut(final=True)

    def _cut(self, final: bool) -> Windows | None:
        rows = self._carry
        if rows is None or len(rows) == 0:
            self._forget_idle()
            return None
        order = np.lexsort((rows.ts, rows.device))
        rows = rows.take(order)
        device = rows.device
        new_device = np.r_[True, device[1:] != device[:-1]]
        silence = np.r_[False, (rows.ts[1:] - rows.ts[:-1]) > self.timeout_s] & ~new_device
        segment_start = np.flatnonzero(new_device | silence)
        position = np.arange(len(rows)) - np.repeat(segment_start, np.diff(np.append(segment_start, len(rows))))
        boundary = new_device | silence | (position % self.size == 0)
        window = np.cumsum(boundary) - 1
        starts = np.flatnonzero(boundary)
        ends = np.append(starts[1:], len(rows)) - 1
        sizes = ends - starts + 1
        last_of_device = np.r_[device[1:] != device[:-1], True][ends]
        # a window closes when full, when a later window of its device began (a silence), when its
        # device has been silent for timeout_s, or at the end of the input
        closing = (sizes == self.size) | ~last_of_device | (rows.ts[ends] < self.clock - self.timeout_s) | final
        keep_rows = closing[window]
        self._carry = rows.take(np.flatnonzero(~keep_rows)) if not final else None
        emitted = np.flatnonzero(keep_rows)
        closed = self._windows(rows.take(emitted), window[emitted]) if len(emitted) else None
        self._forget_idle()  # after the closed windows took their devices' names and times
        return closed

    def _iat(self, rows: Rows) -> np.ndarray:
        """Each row's time since its device's previous packet (across batches); NaN for a device's first."""
        iat = np.empty(len(rows))
        iat[1:] = rows.ts[1:] - rows.ts[:-1]
        first_of_device = np.r_[True, rows.device[1:] != rows.device[:-1]]
        previous = np.array([self._last_ts.get(int(d), np.nan) for d in rows.device[first_of_device]])
        iat[first_of_device] = rows.ts[first_of_device] - previous
        last_of_device = np.r_[rows.device[1:] != rows.device[:-1], True]
        for device_id, ts in zip(rows.device[last_of_device].tolist(), rows.ts[last_of_device].tolist()):
            self._last_ts[device_id] = ts
        return iat

    def _windows(self, rows: Rows, window_id: np.ndarray) -> Windows:
        boundary = np.r_[True, window_id[1:] != window_id[:-1]]
        starts = np.flatnonzero(boundary)
        iat = self._iat(rows)
        features = window_features(rows.matrix, iat, starts)
        n = len(starts)
        window = np.cumsum(boundary) - 1
        devices = rows.device[starts]
        sequence = np.empty(n, np.int64)
        for k, device_id in enumerate(devices.tolist()):
            sequence[k] = self._sequence.get(device_id, 0)
            self._sequence[device_id] = sequence[k] + 1
        both = np.concatenate([rows.ip, rows.peer])
        firsts, ip_codes, _ = unique_rows(*address_words(both))
        addresses = both[firsts]
        device_ip = _mode(window, ip_codes[:len(rows)], np.ones(len(rows), bool), n)
        peer_ip = _mode(window, ip_codes[len(rows):], np.ones(len(rows), bool), n)
        transport = _mode(window, rows.proto, rows.proto > 0, n)
        ported = rows.port > 0
        port = _mode(window, rows.port, ported, n)
        peer_port = _mode(window, rows.peer_port, ported, n)
        names = [self.registry.names[d] for d in devices.tolist()]
        macs = [int(name[4:].replace(":", ""), 16) if name.startswith("mac:") else 0 for name in names]
        ip_text_of = {code: ip_text(addresses[code].tobytes()) for code in set(device_ip.tolist()) | set(peer_ip.tolist())
                      if code >= 0}
        return Windows(
            features=features, device=names,
            device_mac=[mac_text(m) if m else None for m in macs],
            device_ip=[ip_text_of.get(c) for c in device_ip.tolist()],
            device_vendor=[vendor_of(m) for m in macs],
            peer_ip=[ip_text_of.get(c) for c in peer_ip.tolist()],
            transport=[TRANSPORTS.get(t, str(t)) if t >= 0 else None for t in transport.tolist()],
            device_port=[p if p > 0 else None for p in port.tolist()],
            peer_port=[p if p > 0 else None for p in peer_port.tolist()],
            first_ts=rows.ts[starts], last_ts=rows.ts[np.append(starts[1:], len(rows)) - 1], sequence=sequence)

    def _forget_idle(self) -> None:
        """Drop the state of devices idle for ``idle_s`` (their open windows were closed by the timeout)."""
        if not self._last_ts:
            return
        cutoff = self.clock - self.idle_s
        open_devices = set(self._carry.device.tolist()) if self._carry is not None else set()
        idle = [d for d, ts in self._last_ts.items() if ts < cutoff and d not in open_devices]
        for device_id in idle:
            del self._last_ts[device_id]
            self._sequence.pop(device_id, None)
        self.registry.forget(idle)

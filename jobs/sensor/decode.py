"""Header fields of a whole batch of packets at once, with NumPy: no Python code runs per packet.

Every field is gathered at its offset for all packets in one array operation; a field that lies
beyond a packet's captured bytes reads as absent (0, and the layer's flag false). Understood:
Ethernet (one 802.1Q/802.1ad tag), Linux cooked capture v1 and v2, raw IP; IPv4 (L4 headers of
first fragments only), IPv6 (TCP, UDP or ICMPv6 right after the fixed header), ARP; TCP and UDP.

Addresses are 16 bytes (IPv4 as IPv4-mapped IPv6, ``::ffff:a.b.c.d``); MAC addresses are integers
(0: unknown, as on a cooked capture's outgoing side). ARP packets carry their sender and target
protocol addresses in ``src_ip``/``dst_ip`` and the sender hardware address in ``src_mac``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.sensor.capture import ETHERNET, LINUX_SLL, LINUX_SLL2, RAW_IPV4, RAW_IPV6, PacketBatch

ETH_HEADER = 14
IPV4, IPV6, ARP, VLAN, QINQ = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
TCP, UDP, ICMP, IGMP, ICMPV6 = 6, 17, 1, 2, 58
PAD = 64  # zero bytes after the last packet: gathers never leave the array


@dataclass(frozen=True)
class Decoded:
    """Per packet (arrays of one length)."""

    ts: np.ndarray          # float64 seconds
    length: np.ndarray      # int64: the frame's length as on Ethernet (14 + the layer-3 length)
    src_mac: np.ndarray     # uint64, 0 when unknown
    dst_mac: np.ndarray     # uint64, 0 when unknown
    is_ip: np.ndarray       # bool: IPv4 or IPv6
    is_ipv6: np.ndarray     # bool
    is_arp: np.ndarray      # bool
    src_ip: np.ndarray      # uint8 (n, 16)
    dst_ip: np.ndarray      # uint8 (n, 16)
    proto: np.ndarray       # int64: IP protocol / IPv6 next header, 0 when not IP
    ttl: np.ndarray         # int64: TTL / hop limit, 0 when not IP
    l4_header: np.ndarray   # int64: TCP header length (data offset), 8 for UDP, else 0
    sport: np.ndarray       # int64, 0 when none
    dport: np.ndarray       # int64, 0 when none
    tcp_flags: np.ndarray   # int64 (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128)

    def __len__(self) -> int:
        return len(self.ts)


class _Bytes:
    """Gathers from the batch's buffer, guarded by each packet's end."""

    def __init__(self, batch: PacketBatch) -> None:
        self.data = np.concatenate([batch.data, np.zeros(PAD, np.uint8)])
        self.end = batch.offset + batch.caplen
        self.last = len(self.data) - 1

    def has(self, position: np.ndarray, size: int) -> np.ndarray:
        return position + size <= self.end

    def u8(self, position: np.ndarray) -> np.ndarray:
        return self.data[np.minimum(position, self.last)].astype(np.int64)

    def u16(self, position: np.ndarray) -> np.ndarray:
        return (self.u8(position) << 8) | self.u8(position + 1)

    def u48(self, position: np.ndarray) -> np.ndarray:
        value = np.zeros(len(position), np.uint64)
        for i in range(6):
            value = (value << np.uint64(8)) | self.u8(position + i).astype(np.uint64)
        return value

    def block(self, position: np.ndarray, size: int) -> np.ndarray:
        return self.data[np.minimum(position[:, None] + np.arange(size), self.last)]


def decode(batch: PacketBatch) -> Decoded:
    n = len(batch)
    b = _Bytes(batch)
    start = batch.offset
    zeros = np.zeros(n, np.int64)
    src_mac = np.zeros(n, np.uint64)
    dst_mac = np.zeros(n, np.uint64)
    if batch.link_type == ETHERNET:
        dst_mac = np.where(b.has(start, 6), b.u48(start), 0).astype(np.uint64)
        src_mac = np.where(b.has(start, 12), b.u48(start + 6), 0).astype(np.uint64)
        ethertype = b.u16(start + 12)
        tagged = np.isin(ethertype, (VLAN, QINQ))
        ethertype = np.where(tagged, b.u16(start + 16), ethertype)
        l3 = start + np.where(tagged, 18, ETH_HEADER)
        ethertype = np.where(b.has(l3 - 2, 2), ethertype, 0)
    elif batch.link_type == LINUX_SLL:
        ethertype = np.where(b.has(start, 16), b.u16(start + 14), 0)
        six = b.u16(start + 4) == 6
        src_mac = np.where(six & b.has(start, 12), b.u48(start + 6), 0).astype(np.uint64)
        l3 = start + 16
    elif batch.link_type == LINUX_SLL2:
        ethertype = np.where(b.has(start, 20), b.u16(start), 0)
        six = b.u8(start + 11) == 6
        src_mac = np.where(six & b.has(start, 18), b.u48(start + 12), 0).astype(np.uint64)
        l3 = start + 20
    else:  # raw IP: the version nibble tells
        version = b.u8(start) >> 4
        ethertype = np.where(version == 4, IPV4, np.where(version == 6, IPV6, 0))
        if batch.link_type == RAW_IPV4:
            ethertype = np.full(n, IPV4)
        elif batch.link_type == RAW_IPV6:
            ethertype = np.full(n, IPV6)
        l3 = start

    is_v4 = (ethertype == IPV4) & b.has(l3, 20) & ((b.u8(l3) >> 4) == 4)
    is_v6 = (ethertype == IPV6) & b.has(l3, 40) & ((b.u8(l3) >> 4) == 6)
    is_arp = (ethertype == ARP) & b.has(l3, 28)
    is_ip = is_v4 | is_v6

    ihl = (b.u8(l3) & 0x0F) * 4
    proto = np.where(is_v4, b.u8(l3 + 9), np.where(is_v6, b.u8(l3 + 6), 0))
    ttl = np.where(is_v4, b.u8(l3 + 8), np.where(is_v6, b.u8(l3 + 7), 0))
    first_fragment = (b.u16(l3 + 6) & 0x1FFF) == 0
    l3_length = np.where(is_v4, b.u16(l3 + 2), np.where(is_v6, 40 + b.u16(l3 + 4), 0))
    captured_l3 = b.end - l3
    length = ETH_HEADER + np.where(is_ip & (l3_length > 0), l3_length, np.maximum(captured_l3, 0))

    src_ip = np.zeros((n, 16), np.uint8)
    dst_ip = np.zeros((n, 16), np.uint8)
    v4_or_arp = is_v4 | is_arp
    src_ip[v4_or_arp, 10:12] = 0xFF
    dst_ip[v4_or_arp, 10:12] = 0xFF
    src_ip[is_v4, 12:] = b.block(l3[is_v4] + 12, 4)
    dst_ip[is_v4, 12:] = b.block(l3[is_v4] + 16, 4)
    src_ip[is_v6] = b.block(l3[is_v6] + 8, 16)
    dst_ip[is_v6] = b.block(l3[is_v6] + 24, 16)
    src_ip[is_arp, 12:] = b.block(l3[is_arp] + 14, 4)
    dst_ip[is_arp, 12:] = b.block(l3[is_arp] + 24, 4)
    src_mac = np.where(is_arp & b.has(l3, 14), b.u48(l3 + 8), src_mac).astype(np.uint64)

    l4 = np.where(is_v4, l3 + ihl, l3 + 40)
    has_l4 = np.where(is_v4, first_fragment & (ihl >= 20), is_v6)
    tcp = has_l4 & (proto == TCP) & b.has(l4, 20)
    udp = has_l4 & (proto == UDP) & b.has(l4, 8)
    ported = tcp | udp
    sport = np.where(ported, b.u16(l4), zeros)
    dport = np.where(ported, b.u16(l4 + 2), zeros)
    l4_header = np.where(tcp, (b.u8(l4 + 12) >> 4) * 4, np.where(udp, 8, 0))
    tcp_flags = np.where(tcp, b.u8(l4 + 13), zeros)
    return Decoded(ts=batch.ts, length=length.astype(np.int64), src_mac=src_mac, dst_mac=dst_mac, is_ip=is_ip,
                   is_ipv6=is_v6, is_arp=is_arp, src_ip=src_ip, dst_ip=dst_ip, proto=proto, ttl=ttl,
                   l4_header=l4_header, sport=sport, dport=dport, tcp_flags=tcp_flags)

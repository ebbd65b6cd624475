"""Tiny captures built byte by byte for the sensor's tests: frames of a few known packets, written as
pcap (Ethernet, Linux cooked v1 or v2) or pcapng. Generated data: only for tests of the decoding and
feature arithmetic, whose expected values are worked out by hand from these bytes."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

ETHERNET, LINUX_SLL, LINUX_SLL2 = 1, 113, 276


def mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def ip4(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0, ip4(src), ip4(dst))
    return header + payload


def tcp(sport: int, dport: int, flags: int, payload: bytes = b"", options: bytes = b"") -> bytes:
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, offset << 4, flags, 65535, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(payload: bytes = b"") -> bytes:
    return struct.pack("!BBHHH", 8, 0, 0, 1, 1) + payload


def arp_reply(sender_mac: str, sender_ip: str, target_mac: str, target_ip: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, mac(sender_mac), ip4(sender_ip), mac(target_mac),
                       ip4(target_ip))


@dataclass(frozen=True)
class Packet:
    """One packet: its time, link-layer addresses and the layer-3 bytes with their EtherType."""

    ts: float
    src_mac: str
    dst_mac: str
    ethertype: int
    l3: bytes

    def ethernet(self) -> bytes:
        return mac(self.dst_mac) + mac(self.src_mac) + struct.pack("!H", self.ethertype) + self.l3

    def sll(self) -> bytes:  # Linux cooked v1: the sender's address only
        return struct.pack("!HHH", 0, 1, 6) + mac(self.src_mac) + b"\0\0" + struct.pack("!H", self.ethertype) + self.l3

    def sll2(self) -> bytes:  # Linux cooked v2
        return (struct.pack("!HHIHBB", self.ethertype, 0, 1, 1, 0, 6) + mac(self.src_mac) + b"\0\0" + self.l3)


def frames(packets: list[Packet], link_type: int) -> list[bytes]:
    build = {ETHERNET: Packet.ethernet, LINUX_SLL: Packet.sll, LINUX_SLL2: Packet.sll2}[link_type]
    return [build(p) for p in packets]


def write_pcap(path: Path, packets: list[Packet], link_type: int = ETHERNET) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link_type)]
    for packet, frame in zip(packets, frames(packets, link_type)):
        seconds = int(packet.ts)
        micros = int(round((packet.ts - seconds) * 1e6))
        out.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def write_pcapng(path: Path, packets: list[Packet], link_type: int = ETHERNET) -> Path:
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),   # section header
           _block(1, struct.pack("<HHI", link_type, 0, 65535))]               # interface (microseconds)
    for packet, frame in zip(packets, frames(packets, link_type)):
        micros = int(round(packet.ts * 1e6))
        out.append(_block(6, struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(frame), len(frame)) + frame))
    path.write_bytes(b"".join(out))
    return path

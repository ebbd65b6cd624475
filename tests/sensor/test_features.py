"""The sensor's 39 features and device identity on tiny captures built here, against values worked
out by hand (the arithmetic is in the comments); every link type and pcapng give the same windows."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from jobs.sensor.capture import CaptureReport, read_files
from jobs.sensor.decode import decode
from jobs.sensor.devices import DeviceRegistry
from jobs.sensor.windows import Windower
from tests.helpers.pcap import (ETHERNET, LINUX_SLL, LINUX_SLL2, Packet, arp_reply, icmp_echo, ipv4, tcp, udp,
                                write_pcap, write_pcapng)

DEVICE_MAC, BROKER_MAC, ROUTER_MAC = "b8:27:eb:00:00:01", "00:11:22:33:44:55", "00:11:22:33:44:66"
SYN, ACK, PSH = 0x02, 0x10, 0x08


def handshake_and_publish() -> list[Packet]:
    """Device 192.168.1.10 opens an MQTT connection to 192.168.1.1 and publishes: 5 packets."""
    def out(ts: float, flags: int, payload: bytes = b"") -> Packet:
        return Packet(ts, DEVICE_MAC, BROKER_MAC, 0x0800,
                      ipv4("192.168.1.10", "192.168.1.1", 6, tcp(40000, 1883, flags, payload), ttl=64))

    def back(ts: float, flags: int) -> Packet:
        return Packet(ts, BROKER_MAC, DEVICE_MAC, 0x0800,
                      ipv4("192.168.1.1", "192.168.1.10", 6, tcp(1883, 40000, flags), ttl=128))

    publish = b"\x30\x12\x00\x05ward1" + b"72 bpm 98% "  # an MQTT PUBLISH: 2 + 2 + 5 + 11 = 20 bytes
    return [out(100.0, SYN), back(100.1, SYN | ACK), out(100.2, ACK), out(100.4, PSH | ACK, publish), back(100.5, ACK)]


def udp_icmp_arp() -> list[Packet]:
    """Device 192.168.1.20: a DNS query and its answer, a ping, an ARP reply: 4 packets."""
    return [
        Packet(1.0, DEVICE_MAC, ROUTER_MAC, 0x0800, ipv4("192.168.1.20", "8.8.8.8", 17, udp(5353, 53, b"q" * 30), ttl=64)),
        Packet(1.5, ROUTER_MAC, DEVICE_MAC, 0x0800, ipv4("8.8.8.8", "192.168.1.20", 17, udp(53, 5353, b"a" * 50), ttl=118)),
        Packet(2.0, DEVICE_MAC, ROUTER_MAC, 0x0800, ipv4("192.168.1.20", "8.8.8.8", 1, icmp_echo(b"p" * 32), ttl=64)),
        Packet(2.0, DEVICE_MAC, ROUTER_MAC, 0x0806, arp_reply(DEVICE_MAC, "192.168.1.20", ROUTER_MAC, "192.168.1.1")),
    ]


def windows_of(path: Path, size: int, home: list[str]) -> list:
    windower = Windower(registry=DeviceRegistry(home_nets=home), size=size)
    report = CaptureReport(source=str(path))
    out = [w for batch in read_files([path], report) if (w := windower.add(decode(batch))) is not None]
    if (last := windower.finish()) is not None:
        out.append(last)
    assert report.damage is None
    return out


def only_window(path: Path, size: int, home: list[str]):
    found = windows_of(path, size, home)
    assert len(found) == 1 and len(found[0]) == 1
    return found[0]


@pytest.mark.parametrize("link_type", [ETHERNET, LINUX_SLL, LINUX_SLL2])
@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_a_tcp_handshake_and_publish(tmp_path, link_type, writer) -> None:
    w = only_window(writer(tmp_path / "mqtt.cap", handshake_and_publish(), link_type), 5, ["192.168.1.10/32"])
    f = {name: float(values[0]) for name, values in w.features.items()}
    lengths = [54, 54, 54, 74, 54]  # 14 Ethernet + 20 IPv4 + 20 TCP (+ 20 payload)
    assert f["Number"] == 5 and f["Tot sum"] == sum(lengths) == 290
    assert (f["Min"], f["Max"], f["AVG"], f["Tot size"]) == (54, 74, 58, 58)
    assert f["Variance"] == pytest.approx(64.0) and f["Std"] == pytest.approx(8.0)  # (4*16 + 256) / 5
    assert f["Header_Length"] == 20 and f["Protocol Type"] == 6
    assert f["Time_To_Live"] == pytest.approx((64 * 3 + 128 * 2) / 5)
    assert (f["syn_flag_number"], f["ack_flag_number"], f["psh_flag_number"]) == pytest.approx((0.4, 0.8, 0.2))
    assert (f["syn_count"], f["ack_count"], f["fin_count"], f["rst_count"]) == (2, 4, 0, 0)
    assert (f["fin_flag_number"], f["rst_flag_number"], f["ece_flag_number"], f["cwr_flag_number"]) == (0, 0, 0, 0)
    assert (f["TCP"], f["UDP"], f["IPv"], f["LLC"], f["ARP"], f["ICMP"]) == (1, 0, 1, 1, 0, 0)
    assert all(f[name] == 0 for name in ("HTTP", "HTTPS", "DNS", "Telnet", "SMTP", "SSH", "IRC", "DHCP", "IGMP"))
    assert f["IAT"] == pytest.approx(0.125) and f["Rate"] == pytest.approx(8.0)  # gaps 0.1, 0.1, 0.2, 0.1
    assert w.device == ["mac:b8:27:eb:00:00:01"] and w.device_mac == [DEVICE_MAC]
    assert w.device_vendor == ["Raspberry Pi Foundation"]  # the IEEE registry, through netaddr
    assert (w.device_ip, w.peer_ip, w.transport) == (["192.168.1.10"], ["192.168.1.1"], ["TCP"])
    assert (w.device_port, w.peer_port) == ([40000], [1883])
    assert (w.first_ts[0], w.last_ts[0]) == pytest.approx((100.0, 100.5))


@pytest.mark.parametrize("link_type", [ETHERNET, LINUX_SLL, LINUX_SLL2])
def test_udp_icmp_and_arp(tmp_path, link_type) -> None:
    w = only_window(write_pcap(tmp_path / "mix.pcap", udp_icmp_arp(), link_type), 4, ["192.168.1.20/32"])
    f = {name: float(values[0]) for name, values in w.features.items()}
    lengths = [72, 92, 74, 42]  # DNS query 14+20+8+30, answer 14+20+8+50, ping 14+20+8+32, ARP 14+28
    assert (f["Tot sum"], f["Min"], f["Max"], f["AVG"]) == (sum(lengths), 42, 92, 70)
    assert f["Variance"] == pytest.approx((4 + 484 + 16 + 784) / 4)
    assert f["Header_Length"] == pytest.approx((8 + 8 + 0 + 0) / 4)
    assert f["Protocol Type"] == pytest.approx((17 + 17 + 1 + 0) / 4)
    assert f["Time_To_Live"] == pytest.approx((64 + 118 + 64 + 0) / 4)
    assert (f["DNS"], f["UDP"], f["ICMP"], f["ARP"], f["IPv"], f["TCP"]) == (0.5, 0.5, 0.25, 0.25, 0.75, 0)
    assert f["IAT"] == pytest.approx(1 / 3) and f["Rate"] == pytest.approx(3.0)  # gaps 0.5, 0.5, 0.0
    assert w.peer_ip == ["8.8.8.8"] and w.transport == ["UDP"] and w.device_port == [5353]


def test_windows_close_at_their_size_and_at_the_timeout(tmp_path) -> None:
    packets = handshake_and_publish()
    later = [Packet(200.0, DEVICE_MAC, BROKER_MAC, 0x0800,
                    ipv4("192.168.1.10", "192.168.1.1", 6, tcp(40000, 1883, ACK), ttl=64))]
    found = windows_of(write_pcap(tmp_path / "a.pcap", packets + later), 2, ["192.168.1.10/32"])
    numbers = [n for w in found for n in w.features["Number"].tolist()]
    # 2 + 2, then the 5th packet's window times out (10 s) when the packet at 200 s arrives, then the last
    assert numbers == [2, 2, 1, 1]
    assert [s for w in found for s in w.sequence.tolist()] == [0, 1, 2, 3]


def test_each_home_device_gets_its_own_windows_and_outsiders_none(tmp_path) -> None:
    found = windows_of(write_pcap(tmp_path / "b.pcap", handshake_and_publish()), 10, ["192.168.1.0/24"])
    devices = sorted(d for w in found for d in w.device)
    assert devices == ["mac:00:11:22:33:44:55", "mac:b8:27:eb:00:00:01"]  # the broker is a home device too
    assert windows_of(write_pcap(tmp_path / "c.pcap", handshake_and_publish()), 10, ["10.0.0.0/8"]) == []


def test_a_router_mac_is_no_identity_and_dhcp_keeps_the_device(tmp_path) -> None:
    def sent(ts: float, mac: str, ip: str) -> Packet:
        return Packet(ts, mac, BROKER_MAC, 0x0800, ipv4(ip, "8.8.8.8", 17, udp(1000, 2000), ttl=64))

    routed = [sent(float(i), ROUTER_MAC, f"10.9.0.{i + 1}") for i in range(5)]  # five devices behind one router
    renewed = [sent(10.0, DEVICE_MAC, "192.168.1.10"), sent(11.0, DEVICE_MAC, "192.168.1.77")]  # a new lease
    found = windows_of(write_pcap(tmp_path / "r.pcap", routed + renewed), 10, ["10.0.0.0/8", "192.168.0.0/16"])
    by_device = {d: ip for w in found for d, ip in zip(w.device, w.device_ip)}
    assert "mac:b8:27:eb:00:00:01" in by_device and len([d for d in by_device if d.startswith("mac:b8")]) == 1
    assert {f"ip:10.9.0.{i}" for i in range(5, 6)} <= set(by_device)  # past the 3rd address the router is known


def test_idle_devices_are_forgotten(tmp_path) -> None:
    packets = [Packet(float(i) * 1000, DEVICE_MAC, BROKER_MAC, 0x0800,
                      ipv4(f"192.168.{i}.1", "8.8.8.8", 17, udp(1, 2), ttl=64)) for i in range(1, 6)]
    windower = Windower(registry=DeviceRegistry(gateway_ips=100), size=10, timeout_s=10, idle_s=600)
    for batch in read_files([write_pcap(tmp_path / "i.pcap", packets)], CaptureReport(source="i"), max_packets=1):
        windower.add(decode(batch))
    assert windower.open_devices == 1  # each earlier device went idle and was dropped


def test_a_cut_capture_keeps_its_good_part_and_says_so(tmp_path) -> None:
    path = write_pcap(tmp_path / "cut.pcap", handshake_and_publish())
    path.write_bytes(path.read_bytes()[:-10])
    report = CaptureReport(source="cut")
    packets = sum(len(batch) for batch in read_files([path], report))
    assert packets == 4
    assert "truncated" in report.damage and "the 4 packets before the damage were read" in report.damage


def test_ipv6_and_vlan_are_decoded(tmp_path) -> None:
    import struct

    from tests.helpers.pcap import mac

    v6 = (struct.pack("!IHBB", 6 << 28, 8, 17, 61) + bytes.fromhex("fd00" + "00" * 13 + "05")
          + bytes.fromhex("2001" + "0d" + "b8" + "00" * 11 + "01") + udp(5683, 5683))  # CoAP
    tagged = (mac(BROKER_MAC) + mac(DEVICE_MAC) + struct.pack("!HHH", 0x8100, 7, 0x0800)
              + ipv4("192.168.1.10", "192.168.1.1", 6, tcp(1, 2, ACK), ttl=30))
    path = tmp_path / "v.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, ETHERNET)
    frame6 = mac(BROKER_MAC) + mac(DEVICE_MAC) + struct.pack("!H", 0x86DD) + v6
    path.write_bytes(header + b"".join(struct.pack("<IIII", 1, 0, len(f), len(f)) + f for f in (frame6, tagged)))
    batch = next(read_files([path], CaptureReport(source="v")))
    packets = decode(batch)
    assert packets.is_ipv6.tolist() == [True, False] and packets.is_ip.tolist() == [True, True]
    assert packets.proto.tolist() == [17, 6] and packets.ttl.tolist() == [61, 30]
    assert packets.sport.tolist() == [5683, 1] and packets.l4_header.tolist() == [8, 20]
    assert packets.length.tolist() == [14 + 40 + 8, 14 + 20 + 20]
    assert bytes(packets.src_ip[0]).hex() == "fd00" + "00" * 13 + "05"
    assert not math.isnan(float(np.sum(packets.ts)))


def test_a_window_closed_by_a_jump_of_the_clock_keeps_its_device(tmp_path) -> None:
    """Device B's last window closes when the clock jumps (another capture, hours later) while B
    itself went idle: the window is emitted with B's identity before B's state is dropped."""
    def sent(ts: float, mac: str, ip: str) -> Packet:
        return Packet(ts, mac, ROUTER_MAC, 0x0800, ipv4(ip, "8.8.8.8", 17, udp(1, 2), ttl=64))

    packets = [sent(0.0, DEVICE_MAC, "192.168.1.2"), sent(1.0, DEVICE_MAC, "192.168.1.2"),
               sent(2.0, DEVICE_MAC, "192.168.1.2"), sent(5000.0, BROKER_MAC, "192.168.1.3")]
    windower = Windower(registry=DeviceRegistry(), size=2, timeout_s=10, idle_s=600)
    closed = []
    for batch in read_files([write_pcap(tmp_path / "j.pcap", packets)], CaptureReport(source="j"), max_packets=1):
        if (w := windower.add(decode(batch))) is not None:
            closed += list(zip(w.device, w.features["Number"].tolist()))
    assert closed == [("mac:b8:27:eb:00:00:01", 2.0), ("mac:b8:27:eb:00:00:01", 1.0)]
    assert windower.open_devices == 0  # B forgotten once its window was out; C's window is still open


def test_an_address_that_only_receives_is_no_device(tmp_path) -> None:
    """A scan probes 40 home addresses and a broadcast goes to the subnet: only the sender is a device."""
    probes = [Packet(float(i), DEVICE_MAC, "ff:ff:ff:ff:ff:ff" if i == 0 else BROKER_MAC, 0x0800,
                     ipv4("192.168.1.10", "192.168.1.255" if i == 0 else f"192.168.1.{100 + i}", 6,
                          tcp(40000, 22, SYN), ttl=64)) for i in range(40)]
    found = windows_of(write_pcap(tmp_path / "s.pcap", probes), 10, ["192.168.1.0/24"])
    assert {d for w in found for d in w.device} == {"mac:b8:27:eb:00:00:01"}

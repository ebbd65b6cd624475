"""Which device a packet belongs to, and what is known about each device.

A device is an endpoint inside the monitored networks (``--home-net``, default the private and
link-local ranges of IPv4 and IPv6). Its identity is its MAC address where the sensor sees it, so a
device keeps its identity when DHCP gives it a new address; a MAC seen with more than
``gateway_ips`` home addresses is a router's (the devices behind it arrive with its MAC), and those
devices are known by their IP address instead. A packet whose destination MAC is unknown (the
receiving side of a Linux cooked capture) takes the MAC learnt for that IP. Devices behind NAT share
the NAT's address: they appear as one device, the NAT box (docs/sensor.md).

Packets that involve two home devices count for both (each device's view of its own traffic). An
address becomes a device once it has sent a packet: a subnet broadcast, or the thousands of
addresses a scan probes, are no devices.
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from jobs.sensor.keys import address_words, unique_rows

log = logging.getLogger(__name__)

DEFAULT_HOME_NETS: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                      "169.254.0.0/16", "fc00::/7", "fe80::/10")
DEFAULT_GATEWAY_IPS = 3


def ip_text(address: bytes) -> str:
    """A 16-byte address as text (IPv4-mapped addresses as plain IPv4)."""
    ip = ipaddress.IPv6Address(address)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ip)


def unicast(mac: int) -> int:
    """``mac`` when it names one interface; 0 for a broadcast or multicast (group) address."""
    return 0 if mac & (1 << 40) else mac


def mac_text(mac: int) -> str:
    return ":".join(f"{(mac >> shift) & 0xFF:02x}" for shift in range(40, -8, -8))


@lru_cache(maxsize=65536)
def vendor_of(mac: int) -> str | None:
    """The organisation the IEEE registered the MAC's OUI to (netaddr's copy of the registry), or
    None for a locally administered or unregistered address."""
    from netaddr import EUI, NotRegisteredError

    if mac == 0 or mac & (1 << 41):  # unknown, or locally administered (randomised MACs)
        return None
    try:
        return str(EUI(mac).oui.registration().org)
    except (NotRegisteredError, IndexError, ValueError):
        return None


@dataclass
class DeviceRegistry:
    """Devices and their addresses, kept across batches (bounded by the number of devices)."""

    home_nets: Sequence[str] = DEFAULT_HOME_NETS
    gateway_ips: int = DEFAULT_GATEWAY_IPS
    _nets: list = field(init=False, repr=False)
    _home_cache: dict[bytes, bool] = field(default_factory=dict, repr=False)
    _ips_of_mac: dict[int, set[bytes]] = field(default_factory=dict, repr=False)
    _mac_of_ip: dict[bytes, int] = field(default_factory=dict, repr=False)
    _senders: set[bytes] = field(default_factory=set, repr=False)
    _ids: dict[str, int] = field(default_factory=dict, repr=False)
    _next_id: int = field(default=0, repr=False)
    names: dict[int, str] = field(default_factory=dict)
    max_addresses: int = 1_000_000  # learnt (MAC, IP) pairs kept at most (a flood of spoofed sources)

    def __post_init__(self) -> None:
        try:
            self._nets = [ipaddress.ip_network(net, strict=False) for net in self.home_nets]
        except ValueError as exc:
            from jobs.errors import UserError

            raise UserError(f"--home-net: {exc}") from exc

    def is_home(self, address: bytes) -> bool:
        known = self._home_cache.get(address)
        if known is None:
            ip = ipaddress.IPv6Address(address)
            ip = ip.ipv4_mapped or ip
            known = not ip.is_unspecified and any(ip in net for net in self._nets if net.version == ip.version)
            if len(self._home_cache) > 1_000_000:
                self._home_cache.clear()
            self._home_cache[address] = known
        return known

    def is_gateway(self, mac: int) -> bool:
        return len(self._ips_of_mac.get(mac, ())) > self.gateway_ips

    def learn(self, macs: np.ndarray, ips: np.ndarray) -> None:
        """(MAC, IP) pairs seen as senders inside the home networks."""
        if len(self._mac_of_ip) > self.max_addresses:  # bounded memory: start learning afresh
            log.warning("more than %d device addresses learnt: forgetting them", self.max_addresses)
            self._mac_of_ip.clear()
            self._ips_of_mac.clear()
        if len(self._senders) > self.max_addresses:
            self._senders.clear()
        high, low = address_words(ips)
        firsts, _, _ = unique_rows(macs, high, low)
        for row in firsts.tolist():
            mac = unicast(int(macs[row]))
            ip = ips[row].tobytes()
            if not self.is_home(ip):
                continue
            self._senders.add(ip)
            if mac == 0:
                continue
            addresses = self._ips_of_mac.setdefault(mac, set())
            if len(addresses) <= self.gateway_ips:
                addresses.add(ip)
            self._mac_of_ip[ip] = mac

    def key(self, mac: int, ip: bytes) -> str:
        """The device's identity: ``mac:<address>`` or, through a router or unknown MAC, ``ip:<address>``."""
        mac = unicast(mac) or self._mac_of_ip.get(ip, 0)
        if mac and not self.is_gateway(mac):
            return f"mac:{mac_text(mac)}"
        return f"ip:{ip_text(ip)}"

    def device_ids(self, macs: np.ndarray, ips: np.ndarray, home: np.ndarray) -> np.ndarray:
        """An integer id per row (stable for the run; -1 where the endpoint is not a home device)."""
        ids = np.full(len(macs), -1, np.int64)
        if not home.any():
            return ids
        rows = np.flatnonzero(home)
        high, low = address_words(ips[rows])
        firsts, inverse, _ = unique_rows(macs[rows], high, low)
        codes = np.empty(len(firsts), np.int64)
        for k, first in enumerate(firsts.tolist()):
            name = self.key(int(macs[rows[first]]), ips[rows[first]].tobytes())
            code = self._ids.get(name)
            if code is None:
                code = self._ids[name] = self._next_id
                self.names[code] = name
                self._next_id += 1
            codes[k] = code
        ids[rows] = codes[inverse]
        return ids

    def forget(self, device_ids: list[int]) -> None:
        """Drop devices that went idle (they get a new id if they come back)."""
        for device_id in device_ids:
            name = self.names.pop(device_id, None)
            if name is not None:
                self._ids.pop(name, None)

    def home_mask(self, ips: np.ndarray, senders_only: bool = False) -> np.ndarray:
        """Rows whose address is a home address (``senders_only``: one that has sent a packet: an
        address that only receives, a subnet broadcast or a scanned address, is no device)."""
        high, low = address_words(ips)
        firsts, inverse, _ = unique_rows(high, low)
        flags = np.array([self.is_home(key) and (not senders_only or key in self._senders)
                          for key in (ips[row].tobytes() for row in firsts.tolist())], dtype=bool)
        return flags[inverse] if len(firsts) else np.zeros(len(ips), bool)

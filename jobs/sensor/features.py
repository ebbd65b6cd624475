"""The 39 CICIoMT2024 features of a window of packets (docs/features.md defines each and says where
the sensor deviates from the dataset).

:func:`packet_matrix` turns decoded packets into a matrix of per-packet quantities;
:func:`window_features` aggregates rows already grouped into windows (``starts`` marks where each
window begins) with NumPy reductions: no Python code per packet or per window.
"""
from __future__ import annotations

import numpy as np

from jobs.sensor.decode import ICMP, ICMPV6, IGMP, TCP, UDP, Decoded
from schemas.flow_record import FEATURES

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128
# application protocols by well-known port (either side), as in CICIoT2023's extraction
APP_PORTS: dict[str, tuple[int, ...]] = {"HTTP": (80,), "HTTPS": (443,), "DNS": (53,), "Telnet": (23,),
                                         "SMTP": (25,), "SSH": (22,), "IRC": (194, 6667), "DHCP": (67, 68)}
# per-packet quantities averaged over the window (flags and indicators: the share of its packets)
MEANS = ("Header_Length", "Protocol Type", "Time_To_Live", "fin_flag_number", "syn_flag_number",
         "rst_flag_number", "psh_flag_number", "ack_flag_number", "ece_flag_number", "cwr_flag_number",
         *APP_PORTS, "TCP", "UDP", "ARP", "ICMP", "IGMP", "IPv", "LLC")
# counted over the window (packets with the flag)
SUMMED = {"ack_count": "ack_flag_number", "syn_count": "syn_flag_number", "fin_count": "fin_flag_number",
          "rst_count": "rst_flag_number"}


COLUMNS: tuple[str, ...] = (*MEANS, "length")  # the per-packet matrix's columns, in order
LENGTH = len(MEANS)


def packet_matrix(packets: Decoded) -> np.ndarray:
    """Per packet (rows): every averaged quantity (flags and protocol indicators as 0/1), then the
    packet's length; columns as :data:`COLUMNS`."""
    flags = packets.tcp_flags
    matrix = np.zeros((len(packets), len(COLUMNS)), np.float64)

    def put(name: str, values: np.ndarray) -> None:
        matrix[:, COLUMNS.index(name)] = values

    put("Header_Length", packets.l4_header)
    put("Protocol Type", packets.proto)
    put("Time_To_Live", packets.ttl)
    for name, bit in (("fin", FIN), ("syn", SYN), ("rst", RST), ("psh", PSH), ("ack", ACK), ("ece", ECE),
                      ("cwr", CWR)):
        put(f"{name}_flag_number", (flags & bit) != 0)
    for name, numbers in APP_PORTS.items():
        put(name, np.isin(packets.sport, numbers) | np.isin(packets.dport, numbers))
    put("TCP", packets.proto == TCP)
    put("UDP", packets.proto == UDP)
    put("ARP", packets.is_arp)
    put("ICMP", np.isin(packets.proto, (ICMP, ICMPV6)))
    put("IGMP", packets.proto == IGMP)
    put("IPv", packets.is_ip)
    put("LLC", packets.is_ip)  # equal to IPv in every row of the dataset (docs/features.md)
    put("length", packets.length)
    return matrix


def window_features(matrix: np.ndarray, iat: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """The 39 features of each window: rows ``starts[k]`` up to ``starts[k+1]`` (or the end) of
    ``matrix`` (:func:`packet_matrix`, rows grouped by window) form window ``k``. ``iat`` is each
    row's time since the device's previous packet, NaN where unknown."""
    counts = np.diff(np.append(starts, len(matrix))).astype(np.float64)
    sums = np.add.reduceat(matrix, starts, axis=0)
    out: dict[str, np.ndarray] = {name: sums[:, i] / counts for i, name in enumerate(MEANS)}
    for name, source in SUMMED.items():
        out[name] = sums[:, COLUMNS.index(source)]
    length = matrix[:, LENGTH]
    total = sums[:, LENGTH]
    mean = total / counts
    squares = np.add.reduceat(length * length, starts)
    variance = np.maximum(squares / counts - mean * mean, 0.0)
    known = ~np.isnan(iat)
    iat_sum = np.add.reduceat(np.where(known, iat, 0.0), starts)
    iat_n = np.add.reduceat(known.astype(np.float64), starts)
    mean_iat = np.divide(iat_sum, iat_n, out=np.zeros_like(iat_sum), where=iat_n > 0)
    with np.errstate(divide="ignore"):
        rate = np.where(iat_n > 0, 1.0 / mean_iat, 0.0)  # inf for packets in one instant, as in the dataset
    out.update({
        "Rate": rate, "Tot sum": total, "Min": np.minimum.reduceat(length, starts),
        "Max": np.maximum.reduceat(length, starts), "AVG": mean, "Std": np.sqrt(variance), "Tot size": mean,
        "IAT": mean_iat, "Number": counts, "Variance": variance,
    })
    return {name: out[name] for name in FEATURES}

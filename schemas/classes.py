"""The 19 CICIoMT2024 (WiFi and MQTT) classes, their 6 categories, and labels from file names.

In the official release the class is the file name, e.g. ``TCP_IP-DDoS-UDP1_train.pcap.csv`` is
class ``DDoS-UDP`` in category ``DDoS``; captures split in several files carry a digit after the
class (``UDP1``, ``UDP2``, ``ICMP1``, ``ICMP2``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

BENIGN: Final[str] = "Benign"

CATEGORY_OF_CLASS: Final[dict[str, str]] = {
    "Benign": "Benign",
    "DDoS-ICMP": "DDoS", "DDoS-SYN": "DDoS", "DDoS-TCP": "DDoS", "DDoS-UDP": "DDoS",
    "DoS-ICMP": "DoS", "DoS-SYN": "DoS", "DoS-TCP": "DoS", "DoS-UDP": "DoS",
    "MQTT-DDoS-Connect_Flood": "MQTT", "MQTT-DDoS-Publish_Flood": "MQTT",
    "MQTT-DoS-Connect_Flood": "MQTT", "MQTT-DoS-Publish_Flood": "MQTT",
    "MQTT-Malformed_Data": "MQTT",
    "Recon-OS_Scan": "Recon", "Recon-Ping_Sweep": "Recon", "Recon-Port_Scan": "Recon",
    "Recon-VulScan": "Recon",
    "ARP_Spoofing": "Spoofing",
}
CLASSES: Final[tuple[str, ...]] = tuple(CATEGORY_OF_CLASS)
CATEGORIES: Final[tuple[str, ...]] = ("Benign", "DDoS", "DoS", "MQTT", "Recon", "Spoofing")

# <optional TCP_IP- prefix><class><optional capture digit>_<split>.pcap.csv
_FILE_NAME = re.compile(
    r"^(?:TCP_IP-)?(?P<cls>.+?)(?P<part>\d*)_(?P<split>train|test|validation|val)\.pcap\.csv$",
    re.IGNORECASE,
)


class UnknownClassFileError(ValueError):
    """A file name that does not name one of the 19 CICIoMT2024 classes."""


@dataclass(frozen=True)
class FileLabel:
    """What an official file name says about its rows."""

    cls: str
    category: str
    split: str


def label_of_file(path: str | PurePath) -> FileLabel:
    """Class, category and split of an official CICIoMT2024 file name.

    >>> label_of_file("TCP_IP-DDoS-UDP1_train.pcap.csv")
    FileLabel(cls='DDoS-UDP', category='DDoS', split='train')
    """
    name = PurePath(path).name
    match = _FILE_NAME.match(name)
    if match is None:
        raise UnknownClassFileError(
            f"{name!r} is not an official CICIoMT2024 file name: expected "
            "'[TCP_IP-]<class>[N]_(train|test).pcap.csv', e.g. 'TCP_IP-DDoS-UDP1_train.pcap.csv'"
        )
    cls = match.group("cls")
    if cls not in CATEGORY_OF_CLASS and match.group("part"):
        cls = cls + match.group("part")  # a class name that itself ends in a digit
    if cls not in CATEGORY_OF_CLASS:
        raise UnknownClassFileError(
            f"{name!r} names class {cls!r}, which is not one of the 19 CICIoMT2024 classes: "
            + ", ".join(CLASSES)
        )
    split = match.group("split").lower()
    return FileLabel(cls=cls, category=CATEGORY_OF_CLASS[cls], split="validation" if split == "val" else split)

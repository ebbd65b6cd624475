import pytest

from schemas.classes import CATEGORIES, CLASSES, UnknownClassFileError, label_of_file

# Worked out by hand from the dataset's documentation, one row per official file name in ../shared.
OFFICIAL_FILES = {
    "ARP_Spoofing_test.pcap.csv": ("ARP_Spoofing", "Spoofing", "test"),
    "ARP_Spoofing_train.pcap.csv": ("ARP_Spoofing", "Spoofing", "train"),
    "Benign_test.pcap.csv": ("Benign", "Benign", "test"),
    "MQTT-DDoS-Connect_Flood_test.pcap.csv": ("MQTT-DDoS-Connect_Flood", "MQTT", "test"),
    "MQTT-DDoS-Publish_Flood_test.pcap.csv": ("MQTT-DDoS-Publish_Flood", "MQTT", "test"),
    "MQTT-DoS-Connect_Flood_test.pcap.csv": ("MQTT-DoS-Connect_Flood", "MQTT", "test"),
    "MQTT-DoS-Publish_Flood_test.pcap.csv": ("MQTT-DoS-Publish_Flood", "MQTT", "test"),
    "MQTT-Malformed_Data_test.pcap.csv": ("MQTT-Malformed_Data", "MQTT", "test"),
    "Recon-OS_Scan_test.pcap.csv": ("Recon-OS_Scan", "Recon", "test"),
    "Recon-Ping_Sweep_test.pcap.csv": ("Recon-Ping_Sweep", "Recon", "test"),
    "Recon-Port_Scan_test.pcap.csv": ("Recon-Port_Scan", "Recon", "test"),
    "Recon-VulScan_test.pcap.csv": ("Recon-VulScan", "Recon", "test"),
    "TCP_IP-DDoS-ICMP1_test.pcap.csv": ("DDoS-ICMP", "DDoS", "test"),
    "TCP_IP-DDoS-ICMP2_test.pcap.csv": ("DDoS-ICMP", "DDoS", "test"),
    "TCP_IP-DDoS-SYN_test.pcap.csv": ("DDoS-SYN", "DDoS", "test"),
    "TCP_IP-DDoS-TCP_test.pcap.csv": ("DDoS-TCP", "DDoS", "test"),
    "TCP_IP-DDoS-UDP1_test.pcap.csv": ("DDoS-UDP", "DDoS", "test"),
    "TCP_IP-DDoS-UDP2_test.pcap.csv": ("DDoS-UDP", "DDoS", "test"),
    "TCP_IP-DoS-ICMP_test.pcap.csv": ("DoS-ICMP", "DoS", "test"),
    "TCP_IP-DoS-SYN_test.pcap.csv": ("DoS-SYN", "DoS", "test"),
    "TCP_IP-DoS-TCP_test.pcap.csv": ("DoS-TCP", "DoS", "test"),
    "TCP_IP-DoS-UDP_test.pcap.csv": ("DoS-UDP", "DoS", "test"),
    "TCP_IP-DDoS-UDP1_train.pcap.csv": ("DDoS-UDP", "DDoS", "train"),
}


@pytest.mark.parametrize("name, expected", sorted(OFFICIAL_FILES.items()))
def test_label_of_official_file_name(name: str, expected: tuple[str, str, str]) -> None:
    label = label_of_file(f"/some/dir/{name}")
    assert (label.cls, label.category, label.split) == expected


def test_nineteen_classes_in_six_categories() -> None:
    assert len(CLASSES) == 19
    assert len(set(CLASSES)) == 19
    assert CATEGORIES == ("Benign", "DDoS", "DoS", "MQTT", "Recon", "Spoofing")


@pytest.mark.parametrize(
    "name",
    ["flows.csv", "TCP_IP-DDoS-HTTP_train.pcap.csv", "Benign.pcap.csv", "Benign_train.csv", "data.csv"],
)
def test_unknown_file_names_are_refused_with_the_class_list(name: str) -> None:
    with pytest.raises(UnknownClassFileError) as excinfo:
        label_of_file(name)
    assert name in str(excinfo.value)

"""The sensor figures' bookkeeping (the figures themselves come from `iomt-ad sensor-figures`)."""
import pandas as pd

from jobs.sensor.figures import decisions, markdown


def test_decisions_are_told_apart_by_whether_the_window_is_a_burst() -> None:
    scored = pd.DataFrame({"IAT": [0.0005, 0.002, 0.2, 0.3, 0.25],
                           "is_anomaly": [True, False, False, False, True],
                           "predicted_class": ["A", "A", "B", "A", "A"]})
    decided = decisions(scored)
    assert decided["windows"] == 5 and decided["flagged"] == 0.4
    assert decided["top_class"] == "A" and decided["top_class_share"] == 0.8
    assert decided["burst_windows"] == 0.4
    assert decided["flagged_bursts"] == 0.5 and decided["flagged_others"] == round(1 / 3, 4)


def test_a_capture_without_bursts_has_no_burst_share() -> None:
    scored = pd.DataFrame({"IAT": [0.2, 0.3], "is_anomaly": [False, False], "predicted_class": ["B", "B"]})
    decided = decisions(scored)
    assert decided["burst_windows"] == 0.0 and decided["flagged_bursts"] is None
    assert decided["flagged_others"] == 0.0


def test_markdown_lists_the_burst_decisions_at_both_window_lengths() -> None:
    def decided(flagged: float, bursts: float, flagged_bursts: float | None) -> dict:
        return {"windows": 10, "flagged": flagged, "top_class": "A", "top_class_share": 1.0,
                "burst_windows": bursts, "flagged_bursts": flagged_bursts, "flagged_others": 0.0}

    row = {"capture": "x/flood.pcap", "invariant_w10": decided(0.3, 0.3, 1.0), "invariant_w100": decided(0.0, 0.0, None),
           "before_w10": decided(1.0, 0.3, 1.0), "before_w100": decided(1.0, 0.0, None),
           "invariant_phase": {"w10": {"min": 0.33, "max": 0.39}, "w100": {"min": 0.0, "max": 0.17}}}
    figures = {"sites": [], "iomt_benign_hour": {"stock": {"hours": 1, "devices": 1, "per_device_hour": 1},
                                                 "baseline": {"per_device_hour": 1}},
               "window_invariance": {"floods": [row], "testbed_benign": [], "burst_iat_s": 0.01,
                                     "benign_rows_at_window_100": {"rows": 1, "invariant": {"as_recorded": 0, "window_100": 0},
                                                                   "before": {"as_recorded": 0, "window_100": 1}}}}
    text = markdown(figures)
    assert "under 10 ms" in text
    assert ("| `x/flood.pcap` | 30% bursts, 100% / 0% flagged | 0% bursts, - / 0% flagged | 33%-39% | 0%-17% |"
            in text)


def test_packets_left_out_shift_every_later_packet_across_batches() -> None:
    import numpy as np

    from jobs.sensor.capture import PacketBatch, skip_packets

    def batch(first: int, count: int) -> PacketBatch:
        return PacketBatch(1, np.arange(first, first + count, dtype=float), np.arange(count) * 2,
                           np.full(count, 2), np.zeros(2 * count, dtype=np.uint8))

    kept = list(skip_packets(iter([batch(0, 3), batch(3, 4)]), 5))
    assert [b.ts.tolist() for b in kept] == [[5.0, 6.0]]
    assert kept[0].offset.tolist() == [4, 6] and kept[0].caplen.tolist() == [2, 2]
    assert [len(b) for b in skip_packets(iter([batch(0, 3), batch(3, 4)]), 0)] == [3, 4]

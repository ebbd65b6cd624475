"""``iomt-ad sensor-figures``: what the bundles make of real captures the models never saw.

For ``../shared/data/pcap`` (two MQTT/IoMT testbeds and MQTTset), with the sensor's windows:

1. the share of windows flagged in each capture of ``mqtt-testbed-labelled/`` and ``mqttset-reduced/``,
   with the stock bundle and with a site baseline (``iomt-ad baseline``) learnt on that site's benign
   captures only (the testbed's three benign captures, too small to leave one out: about 250 windows
   together; MQTTset's ``benign-5mb-train``);
2. false alerts per device-hour on the IoMT testbed's benign hour (``iomt-testbed-benign/``), with the
   stock bundle and with a baseline learnt on the other sites' benign traffic, never on that hour;
3. window invariance: the flood captures windowed at 10 and at 100 packets, scored by the window-
   invariant bundle and by the one before it (share flagged and the dominant class at each length);
   and the dataset's benign held-out rows with ``Number`` set to 100 (``Tot sum`` and the counts
   scaled with it), as the two bundles see them.

Writes the figures as JSON and prints them as Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"
TESTBED, MQTTSET, IOMT = "mqtt-testbed-labelled", "mqttset-reduced", "iomt-testbed-benign"
FLOODS = ("mqtt-testbed-labelled/dos_flood_ref01.pcap", "mqtt-testbed-labelled/dos_flood_ref02.pcap",
          "mqtt-testbed-labelled/dos_flood_ref03.pcap", "mqtt-testbed-labelled/dos_flood_ref04.pcap",
          "mqttset-reduced/flood.pcap", "mqttset-reduced/malariados.pcap")
# the MQTT testbed's benign captures beside its floods: they hold short bursts too
TESTBED_BENIGN = ("mqtt-testbed-labelled/benign_ref02.pcap", "mqtt-testbed-labelled/benign_ref04.pcap")
# a window whose mean inter-arrival time is under this is a burst (over 100 packets a second)
BURST_IAT_S = 0.01
# the windows' phase: each capture is also windowed with its first 1..PHASES-1 packets left out
PHASES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder holding pcap/ and ciciomt2024/")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help=f"the stock bundle (default {DEFAULT_BUNDLE})")
    parser.add_argument("--before", type=Path, default=Path("models/v2"),
                        help="the bundle before window invariance, for item 3 (default models/v2)")
    parser.add_argument("--out", type=Path, default=Path("docs/sensor-figures.json"), help="the figures as JSON")


class Scorer:
    """Windows of each capture (computed once) scored by bundles (loaded once)."""

    def __init__(self, pcap_dir: Path) -> None:
        self.pcap_dir = pcap_dir
        self._records: dict[tuple[str, int, int], pd.DataFrame] = {}

    def records(self, capture: str, window: int = 10, skip: int = 0) -> pd.DataFrame:
        from jobs.sensor.command import capture_records

        key = (capture, window, skip)
        if key not in self._records:
            frame, report = capture_records([self.pcap_dir / capture], window=window, skip=skip)
            if report.damage:
                raise RuntimeError(report.damage)
            self._records[key] = frame
        return self._records[key]

    def scored(self, capture: str, bundle_dir: Path, window: int = 10, skip: int = 0) -> pd.DataFrame:
        from jobs.sensor.report import score_records
        from udfs.model_cache import get_bundle

        return score_records(self.records(capture, window, skip), get_bundle(bundle_dir))

    def share_flagged(self, capture: str, bundle_dir: Path, window: int = 10, skip: int = 0) -> float:
        scored = self.scored(capture, bundle_dir, window, skip)
        return round(float(scored["is_anomaly"].mean()), 4) if len(scored) else float("nan")

    def baseline(self, captures: list[str], base: Path, out: Path) -> Path:
        from models.training.baseline import fit_site_baseline

        site = pd.concat([self.records(c) for c in captures], ignore_index=True)
        fit_site_baseline(base, site, out, out.name, {"captures": captures, "window_packets": 10})
        return out


def _captures(pcap_dir: Path, folder: str) -> list[str]:
    return sorted(f"{folder}/{p.name}" for p in (pcap_dir / folder).glob("*.pcap*"))


def site_figures(scorer: Scorer, model: Path, work: Path) -> list[dict[str, Any]]:
    rows = []
    for folder in (TESTBED, MQTTSET):
        captures = _captures(scorer.pcap_dir, folder)
        benign = [c for c in captures if "benign" in Path(c).name]
        learn_from = benign if folder == TESTBED else [f"{MQTTSET}/benign-5mb-train.pcap"]
        site = scorer.baseline(learn_from, model, work / f"site-{folder}")
        for capture in captures:
            rows.append({"capture": capture, "windows": len(scorer.records(capture)),
                         "stock": scorer.share_flagged(capture, model), "baseline": scorer.share_flagged(capture, site),
                         "note": "the baseline learnt on it" if capture in learn_from else ""})
    return rows


def false_alerts_per_device_hour(scorer: Scorer, model: Path, work: Path) -> dict[str, Any]:
    capture = _captures(scorer.pcap_dir, IOMT)[0]
    others = [c for c in _captures(scorer.pcap_dir, TESTBED) if "benign" in Path(c).name] + [
        f"{MQTTSET}/benign-5mb-train.pcap"]
    site = scorer.baseline(others, model, work / "site-other-benign")
    out: dict[str, Any] = {"capture": capture, "baseline_learnt_on": others}
    for name, bundle in (("stock", model), ("baseline", site)):
        scored = scorer.scored(capture, bundle)
        times = pd.to_datetime(scored["event_time"])
        hours = max((times.max() - times.min()).total_seconds() / 3600, 1e-9)
        per_device = scored.groupby("device_id")["is_anomaly"].sum()
        out[name] = {"hours": round(hours, 2), "devices": int(len(per_device)),
                     "windows": int(len(scored)), "flagged": int(scored["is_anomaly"].sum()),
                     "per_device_hour": round(float(per_device.mean() / hours), 2),
                     "by_device": {k: round(float(v / hours), 2) for k, v in per_device.items()}}
    return out


def window_invariance(scorer: Scorer, model: Path, before: Path, data: Path) -> dict[str, Any]:
    """Each flood capture (and the MQTT testbed's benign ones) windowed at 10 and at 100 packets,
    scored by both bundles: the share flagged, the dominant class, and the decisions told apart by
    what the window holds (a burst or not), so that a capture whose 100-packet windows hold no
    burst is seen as such."""
    def rows(captures: tuple[str, ...]) -> list[dict[str, Any]]:
        found = []
        for capture in captures:
            if not (scorer.pcap_dir / capture).is_file():
                continue
            row: dict[str, Any] = {"capture": capture}
            for label, bundle in (("invariant", model), ("before", before)):
                for window in (10, 100):
                    row[f"{label}_w{window}"] = decisions(scorer.scored(capture, bundle, window))
            # where the windows start: the share flagged with the first 0..PHASES-1 packets left out
            row["invariant_phase"] = {f"w{window}": _spread([scorer.share_flagged(capture, model, window, skip)
                                                             for skip in range(PHASES)]) for window in (10, 100)}
            found.append(row)
        return found

    return {"floods": rows(FLOODS), "testbed_benign": rows(TESTBED_BENIGN), "burst_iat_s": BURST_IAT_S,
            "benign_rows_at_window_100": _benign_at_100(model, before, data)}


def _spread(shares: list[float]) -> dict[str, float]:
    return {"min": min(shares), "max": max(shares)}


def decisions(scored: pd.DataFrame) -> dict[str, Any]:
    """A bundle's decisions on a capture's windows: the share flagged and the dominant class, and
    the share flagged among burst windows (mean inter-arrival time under ``BURST_IAT_S``) and among
    the others (None where there are none)."""
    top = scored["predicted_class"].value_counts(normalize=True)
    burst = scored["IAT"] < BURST_IAT_S

    def flagged(part: pd.Series) -> float | None:
        return round(float(part.mean()), 4) if len(part) else None

    return {"windows": int(len(scored)), "flagged": flagged(scored["is_anomaly"]),
            "top_class": str(top.index[0]), "top_class_share": round(float(top.iloc[0]), 4),
            "burst_windows": flagged(burst), "flagged_bursts": flagged(scored["is_anomaly"][burst]),
            "flagged_others": flagged(scored["is_anomaly"][~burst])}


def _benign_at_100(model: Path, before: Path, data: Path) -> dict[str, Any]:
    """The dataset's benign held-out rows, as recorded and with their window scaled to 100 packets."""
    from models.training.datasets import load_flows_pandas
    from models.training.split import TEST, SplitConfig, split_frame
    from schemas.flow_record import FEATURES
    from udfs.model_cache import get_bundle
    from udfs.scoring import score_frame

    frame = load_flows_pandas([data / "ciciomt2024" / "Benign_test.pcap.csv"])
    rows = frame[split_frame(frame, SplitConfig()) == TEST][list(FEATURES)].reset_index(drop=True)
    scaled = rows.copy()
    factor = 100.0 / rows["Number"]
    for name in ("Number", "Tot sum", "ack_count", "syn_count", "fin_count", "rst_count"):
        scaled[name] = rows[name] * factor
    out: dict[str, Any] = {"rows": int(len(rows))}
    for label, bundle_dir in (("invariant", model), ("before", before)):
        bundle = get_bundle(bundle_dir)
        out[label] = {"as_recorded": round(float(score_frame(rows, bundle)["is_anomaly"].mean()), 4),
                      "window_100": round(float(score_frame(scaled, bundle)["is_anomaly"].mean()), 4)}
    return out


def markdown(figures: dict[str, Any]) -> str:
    lines = ["| capture | windows | flagged, stock | flagged, site baseline | |", "|---|---:|---:|---:|---|"]
    for row in figures["sites"]:
        lines.append(f"| `{row['capture']}` | {row['windows']} | {row['stock']:.1%} | {row['baseline']:.1%} | {row['note']} |")
    alerts = figures["iomt_benign_hour"]
    lines += ["", f"IoMT testbed benign hour ({alerts['stock']['hours']} h, {alerts['stock']['devices']} devices): "
              f"{alerts['stock']['per_device_hour']} false alerts per device-hour with the stock bundle, "
              f"{alerts['baseline']['per_device_hour']} with a baseline learnt on the other sites' benign traffic."]
    lines += ["", "| flood capture | invariant w10 | invariant w100 | before w10 | before w100 |", "|---|---|---|---|---|"]
    for row in figures["window_invariance"]["floods"]:
        cells = [f"{row[k]['flagged']:.0%} flagged, {row[k]['top_class']} {row[k]['top_class_share']:.0%}"
                 for k in ("invariant_w10", "invariant_w100", "before_w10", "before_w100")]
        lines.append(f"| `{row['capture']}` | " + " | ".join(cells) + " |")
    lines += ["", f"The invariant bundle's decisions by what a window holds (a burst: mean inter-arrival time "
              f"under {figures['window_invariance'].get('burst_iat_s', BURST_IAT_S) * 1000:.0f} ms): "
              "bursts among the windows, flagged among bursts, flagged among the others", "",
              f"; and the share flagged with the first 0-{PHASES - 1} packets left out (the windows' phase)", "",
              "| capture | w10 | w100 | w10 by phase | w100 by phase |", "|---|---|---|---|---|"]
    for row in figures["window_invariance"]["floods"] + figures["window_invariance"].get("testbed_benign", []):
        if "burst_windows" in row["invariant_w10"]:
            phase = row.get("invariant_phase", {})
            lines.append(f"| `{row['capture']}` | " + " | ".join(
                [*(_burst_cell(row[f"invariant_w{window}"]) for window in (10, 100)),
                 *(f"{phase[key]['min']:.0%}-{phase[key]['max']:.0%}" if key in phase else "-"
                   for key in ("w10", "w100"))]) + " |")
    benign = figures["window_invariance"]["benign_rows_at_window_100"]
    lines += ["", f"Benign held-out rows ({benign['rows']}) flagged as recorded / with a 100-packet window: "
              f"invariant {benign['invariant']['as_recorded']:.1%} / {benign['invariant']['window_100']:.1%}, "
              f"before {benign['before']['as_recorded']:.1%} / {benign['before']['window_100']:.1%}."]
    return "\n".join(lines)


def _burst_cell(decided: dict[str, Any]) -> str:
    share = lambda value: "-" if value is None else f"{value:.0%}"  # noqa: E731
    return (f"{share(decided['burst_windows'])} bursts, {share(decided['flagged_bursts'])} / "
            f"{share(decided['flagged_others'])} flagged")


def run(args: argparse.Namespace) -> int:
    scorer = Scorer(args.data / "pcap")
    with tempfile.TemporaryDirectory(prefix="iomt-figures-") as work:
        figures = {"model": str(args.model), "before": str(args.before), "window_packets": 10,
                   "sites": site_figures(scorer, args.model, Path(work)),
                   "iomt_benign_hour": false_alerts_per_device_hour(scorer, args.model, Path(work)),
                   "window_invariance": window_invariance(scorer, args.model, args.before, args.data)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(markdown(figures) + "\n")
    return 0

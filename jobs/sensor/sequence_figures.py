"""``iomt-ad sequence-figures``: does an autoencoder that reads a device's last k windows catch what
one window at a time misses?

For each site of ``../shared/data/pcap`` with labelled attack captures (the MQTT testbed and
MQTTset), site baselines (``iomt-ad baseline``) are learnt from the same benign windows, once with
the autoencoder reading one window (timesteps 1, as every bundle did) and once per ``--timesteps``
K reading the device's last K windows (:mod:`models.sequences`). Everything else is the same: base
bundle, preprocessing, Isolation Forest, classifier, the 1% false-positive target on the site's
benign validation windows. Then every capture of the site is scored (the sensor's 10-packet
windows, each device's windows in time order) and the share of windows flagged is reported, by
the ensemble (what the product alerts on) and by the autoencoder alone (against its own
threshold), with one benign capture per site held out of the learning as unseen normal traffic.

Labels are per capture: an attack capture also holds its devices' ordinary traffic, so its share
flagged is not a detection rate; the held-out benign capture's share is a false-positive rate.
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

from jobs.sensor.figures import DEFAULT_DATA, MQTTSET, TESTBED, Scorer, _captures
from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)

# per site: the benign captures learnt from, and the benign capture held out as unseen normal traffic
SITES: dict[str, tuple[tuple[str, ...], str]] = {
    TESTBED: ((f"{TESTBED}/benign_ref02.pcap", f"{TESTBED}/benign_ref04.pcap"), f"{TESTBED}/benign_ref03.pcap"),
    MQTTSET: ((f"{MQTTSET}/benign-5mb-train.pcap",), f"{MQTTSET}/benign-5mb-test.pcap"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder holding pcap/")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help=f"the base bundle (default {DEFAULT_BUNDLE})")
    parser.add_argument("--timesteps", type=int, nargs="+", default=[4, 8], metavar="K",
                        help="sequence lengths compared with one window (default 4 8)")
    parser.add_argument("--out", type=Path, default=Path("docs/sequence-figures.json"), help="the figures as JSON")


def shares(scorer: Scorer, capture: str, bundle_dir: Path) -> dict[str, float]:
    """Share of the capture's windows flagged by the ensemble and by the autoencoder alone."""
    from udfs.model_cache import get_bundle

    scored = scorer.scored(capture, bundle_dir)
    ae_threshold = get_bundle(bundle_dir).thresholds["lstm_ae"].value
    return {"ensemble": round(float(scored["is_anomaly"].mean()), 4),
            "autoencoder": round(float((scored["ae_error"] > ae_threshold).mean()), 4)}


def site_comparison(scorer: Scorer, site: str, model: Path, timesteps: list[int], work: Path) -> dict[str, Any]:
    from models.training.baseline import fit_site_baseline

    learn_from, held_out = SITES[site]
    records = pd.concat([scorer.records(c) for c in learn_from], ignore_index=True)
    bundles = {}
    for k in [1, *timesteps]:
        out = work / f"{Path(site).name}-t{k}"
        fit = fit_site_baseline(model, records, out, out.name, {"captures": list(learn_from), "window_packets": 10},
                                timesteps=k)
        bundles[k] = (out, fit)
    rows = []
    for capture in _captures(scorer.pcap_dir, site):
        row: dict[str, Any] = {"capture": capture, "windows": len(scorer.records(capture)),
                               "role": ("learnt from" if capture in learn_from else
                                        "held-out benign" if capture == held_out else "attack")}
        for k, (bundle_dir, _) in bundles.items():
            row[f"t{k}"] = shares(scorer, capture, bundle_dir)
        rows.append(row)
    return {"site": site, "learnt_from": list(learn_from), "held_out_benign": held_out,
            "training_windows": len(records),
            "epochs": {f"t{k}": fit["lstm_ae_epochs"] for k, (_, fit) in bundles.items()}, "captures": rows}


def markdown(figures: dict[str, Any]) -> str:
    ks = [1, *figures["timesteps"]]
    lines = []
    for site in figures["sites"]:
        lines += ["", f"{site['site']}: learnt from {', '.join(Path(c).name for c in site['learnt_from'])} "
                      f"({site['training_windows']} windows); shares flagged, ensemble / autoencoder alone", "",
                  "| capture | windows | " + " | ".join(f"timesteps {k}" for k in ks) + " |",
                  "|---|---:|" + "---:|" * len(ks)]
        for row in site["captures"]:
            cells = [f"{row[f't{k}']['ensemble']:.1%} / {row[f't{k}']['autoencoder']:.1%}" for k in ks]
            name = Path(row["capture"]).name + ("" if row["role"] == "attack" else f" ({row['role']})")
            lines.append(f"| `{name}` | {row['windows']} | " + " | ".join(cells) + " |")
    return "\n".join(lines).lstrip("\n")


def run(args: argparse.Namespace) -> int:
    scorer = Scorer(args.data / "pcap")
    with tempfile.TemporaryDirectory(prefix="iomt-sequence-") as work:
        figures = {"model": str(args.model), "window_packets": 10, "timesteps": args.timesteps, "target_fpr": 0.01,
                   "sites": [site_comparison(scorer, site, args.model, args.timesteps, Path(work)) for site in SITES]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(markdown(figures) + "\n")
    return 0

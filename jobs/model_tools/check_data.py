"""``iomt-ad check-data``: validate CICIoMT2024 CSV files and show what they hold, per file and class."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from models.training.datasets import SOURCE_FILE_COLUMN, load_flows_pandas
from schemas.classes import label_of_file
from schemas.flow_record import FEATURES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="official CICIoMT2024 *.pcap.csv files or directories of them")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def summarise(paths: list[str]) -> list[dict[str, object]]:
    flows = load_flows_pandas(paths)
    features = flows[list(FEATURES)].to_numpy()
    rows = []
    for name, index in flows.groupby(SOURCE_FILE_COLUMN, sort=True).groups.items():
        block = features[np.asarray(flows.index.get_indexer(index))]
        file_label = label_of_file(str(name))
        rows.append({
            "file": str(name),
            "class": file_label.cls,
            "category": file_label.category,
            "rows": int(len(block)),
            "inf_values": int(np.isinf(block).sum()),
            "missing_values": int(np.isnan(block).sum()),
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = summarise(args.data)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    header = f"{'file':45} {'class':26} {'category':9} {'rows':>7} {'inf':>5} {'missing':>7}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['file']:45} {row['class']:26} {row['category']:9} {row['rows']:>7} "
                     f"{row['inf_values']:>5} {row['missing_values']:>7}")
    classes = {row["class"] for row in rows}
    lines.append(f"{sum(int(r['rows']) for r in rows)} rows, {len(rows)} files, {len(classes)} classes")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0

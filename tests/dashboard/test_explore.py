"""iomt-ad explore on the project's real sample: one offline HTML page, benign against attack."""
from __future__ import annotations

import argparse
import csv
import re

from jobs.model_tools import explore


def _benign_rows(sample_dir) -> int:
    with (sample_dir / "Benign_test.pcap.csv").open() as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def test_explore_writes_histograms_and_scatter_plots(sample_dir, tmp_path) -> None:
    out = tmp_path / "explore.html"
    parser = argparse.ArgumentParser()
    explore.add_arguments(parser)
    assert explore.run(parser.parse_args(["--data", str(sample_dir), "--html", str(out),
                                          "--features", "Rate", "Header_Length", "IAT"])) == 0
    page = out.read_text()
    assert page.count("Plotly.newPlot") == 1 + 3 + len(explore.DEFAULT_PAIRS)
    assert '<script src="http' not in page  # plotly.js embedded: the page works offline
    for title in ("Rows per class", "Rate: benign vs attack", "Header_Length: benign vs attack",
                  "IAT: benign vs attack", "Rate vs Header_Length"):
        assert title in page
    benign = _benign_rows(sample_dir)
    assert f"Benign (n={benign:,})" in page


def test_figures_keep_every_finite_row(sample_dir) -> None:
    from models.training.datasets import load_flows_pandas

    flows = load_flows_pandas([sample_dir])
    figure = explore.histogram_figure(flows, "Header_Length")
    counts = {trace.name.split(" ")[0]: len(trace.x) for trace in figure.data}
    benign = _benign_rows(sample_dir)
    assert counts == {"Benign": benign, "attack": len(flows) - benign}
    rate = explore.histogram_figure(flows, "Rate")
    match = re.search(r"([\d,]+) non-finite cells left out", rate.layout.title.text)
    skipped = int(match.group(1).replace(",", "")) if match else 0
    assert sum(len(trace.x) for trace in rate.data) + skipped == len(flows)

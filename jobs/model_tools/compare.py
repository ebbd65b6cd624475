"""``iomt-ad models compare``: the champion and the challenger on the same live records, from
``flows_shadow`` (every record the challenger scored in shadow, with both verdicts): how often they
agree, how many alerts each would raise, and, on records that carry a true label (replayed or
labelled captures), each one's detection per class (for ``Benign``, its false-positive rate)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from schemas.tables import FLOWS_SHADOW

if TYPE_CHECKING:
    from datetime import datetime

    from jobs.storage import TablesLocation

COLUMNS = ["event_time", "label", "champion_version", "champion_is_anomaly", "champion_predicted_class",
           "model_version", "is_anomaly", "predicted_class"]


def read_shadow(tables: "TablesLocation", since: "datetime | None" = None) -> pd.DataFrame:
    """The shadow rows (``COLUMNS``), from ``since`` on when given; empty before any."""
    import pyarrow.dataset as pads
    from deltalake import DeltaTable

    uri = tables.uri(FLOWS_SHADOW)
    options = tables.storage_options()
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return pd.DataFrame(columns=COLUMNS)
    dataset = DeltaTable(uri, storage_options=options).to_pyarrow_dataset()
    condition = None if since is None else ((pads.field("event_date") >= since.date())
                                            & (pads.field("event_time") >= since))
    return dataset.to_table(columns=COLUMNS, filter=condition).to_pandas()


def compare(shadow: pd.DataFrame) -> list[dict[str, Any]]:
    """One summary per (champion, challenger) pair found in ``shadow``."""
    out = []
    for (champion, challenger), rows in shadow.groupby(["champion_version", "model_version"], sort=True):
        mine = rows["champion_is_anomaly"].astype(bool)
        theirs = rows["is_anomaly"].astype(bool)
        summary: dict[str, Any] = {
            "champion": champion, "challenger": challenger, "records": int(len(rows)),
            "first": rows["event_time"].min(), "last": rows["event_time"].max(),
            "agreement": float((mine == theirs).mean()),
            "champion_alerts": int(mine.sum()), "challenger_alerts": int(theirs.sum()),
            "only_champion_flags": int((mine & ~theirs).sum()), "only_challenger_flags": int((~mine & theirs).sum()),
            "class_agreement": float((rows["champion_predicted_class"] == rows["predicted_class"]).mean()),
        }
        labelled = rows[rows["label"].notna()]
        summary["labelled_records"] = int(len(labelled))
        summary["per_class"] = {
            str(label): {"records": int(len(group)),
                         "champion_flagged": float(group["champion_is_anomaly"].astype(bool).mean()),
                         "challenger_flagged": float(group["is_anomaly"].astype(bool).mean())}
            for label, group in labelled.groupby("label", sort=True)}
        out.append(summary)
    return out


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The comparison as text for a terminal."""
    if not summaries:
        return ("no shadow records yet: set a challenger (`iomt-ad models challenger VERSION`) while the stream "
                "runs with stream.model_role: champion\n")
    lines = []
    for s in summaries:
        lines += [f"champion {s['champion']} vs challenger {s['challenger']}: {s['records']:,} records "
                  f"({s['first']} .. {s['last']})",
                  f"  decisions agree on {s['agreement']:.2%}; alerts: champion {s['champion_alerts']:,}, challenger "
                  f"{s['challenger_alerts']:,} (only champion {s['only_champion_flags']:,}, only challenger "
                  f"{s['only_challenger_flags']:,}); predicted class agrees on {s['class_agreement']:.2%}"]
        if s["per_class"]:
            lines.append(f"  on {s['labelled_records']:,} labelled records, share flagged (Benign: false positives):")
            lines += [f"    {label:28} n={c['records']:>6}  champion {c['champion_flagged']:7.2%}  "
                      f"challenger {c['challenger_flagged']:7.2%}" for label, c in s["per_class"].items()]
    return "\n".join(lines) + "\n"

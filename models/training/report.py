"""The Plotly HTML evaluation report (self-contained: plotly.js is inlined once, so it opens offline)."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.training.evaluation import DETECTORS, confusion, curves
from schemas.classes import BENIGN


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError as error:  # pragma: no cover
        raise ImportError("the HTML report needs plotly: pip install plotly==7.1.0") from error
    return go


def _thin(*arrays: np.ndarray, n: int = 600) -> list[np.ndarray]:
    size = len(arrays[0])
    if size <= n:
        return list(arrays)
    index = np.unique(np.linspace(0, size - 1, n).astype(int))
    return [a[index] for a in arrays]


def build_figures(result: dict[str, Any], scored: pd.DataFrame, thresholds: dict[str, float]) -> list[Any]:
    go = _plotly()
    figures = []
    y = scored["label"].ne(BENIGN).to_numpy().astype(int)
    labels = scored.attrs.get("labels", {})
    for truth, predicted, names, title in (
            ("label", "predicted_class", labels.get("classes"), "Classifier confusion matrix (19 classes, held-out rows)"),
            ("category", "predicted_category", labels.get("categories"), "Classifier confusion matrix (6 categories)")):
        names = names or sorted(set(scored[truth]) | set(scored[predicted]))
        matrix = confusion(scored, truth, predicted, names)
        figures.append(go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix,
                                            texttemplate="%{text}"),
                                 layout=dict(title=title, xaxis_title="predicted", yaxis_title="true",
                                             height=700 if len(names) > 8 else 450, yaxis_autorange="reversed")))
    binary_cm = go.Figure()
    roc, pr = go.Figure(), go.Figure()
    for name, (column, _) in DETECTORS.items():
        c = curves(y, scored[column].to_numpy())
        fpr, tpr = _thin(c["fpr"], c["tpr"])
        recall, precision = _thin(c["recall"], c["precision"])
        auc = result["binary"][name]["roc_auc"]
        roc.add_trace(go.Scatter(x=fpr, y=tpr, name=f"{name} (ROC-AUC {auc:.4f})", mode="lines"))
        pr.add_trace(go.Scatter(x=recall, y=precision, name=f"{name} (PR-AUC {result['binary'][name]['pr_auc']:.4f})",
                                mode="lines"))
    roc.update_layout(title="ROC per detector (held-out rows)", xaxis_title="false-positive rate",
                      yaxis_title="detection rate", xaxis_type="log")
    pr.update_layout(title="Precision-recall per detector", xaxis_title="recall", yaxis_title="precision")
    figures += [roc, pr]
    flagged = scored["is_anomaly"].to_numpy()
    tp, fn = int((flagged & (y == 1)).sum()), int((~flagged & (y == 1)).sum())
    fp, tn = int((flagged & (y == 0)).sum()), int((~flagged & (y == 0)).sum())
    binary_cm.add_trace(go.Heatmap(z=[[tn, fp], [fn, tp]], x=["normal", "anomaly"], y=["benign", "attack"],
                                   text=[[tn, fp], [fn, tp]], texttemplate="%{text}", colorscale="Blues"))
    binary_cm.update_layout(title="Ensemble confusion matrix (is_anomaly)", xaxis_title="decision",
                            yaxis_title="truth", yaxis_autorange="reversed", height=400)
    figures.append(binary_cm)
    per_class = result["per_class"]
    classes = list(per_class)
    bars = go.Figure()
    for name in DETECTORS:
        bars.add_trace(go.Bar(x=classes, y=[per_class[c]["detection_rate_by_detector"][name] for c in classes], name=name))
    bars.update_layout(title="Detection rate per class at each detector's threshold (Benign: false-positive rate)",
                       barmode="group", yaxis_range=[0, 1.02], height=550)
    figures.append(bars)
    box = go.Figure()
    for cls in classes:
        errors = scored.loc[scored["label"].eq(cls), "ae_error"].to_numpy()
        box.add_trace(go.Box(y=np.maximum(errors, 1e-6), name=cls, boxpoints=False))
    box.add_hline(y=thresholds["lstm_ae"], line_dash="dash", annotation_text="AE threshold")
    box.update_layout(title="LSTM AE reconstruction error (MSE) per class", yaxis_type="log", showlegend=False, height=550)
    figures.append(box)
    sweep = go.Figure()
    score = scored["ensemble_score"].to_numpy()
    grid = np.unique(np.quantile(score, np.linspace(0, 1, 400)))
    sweep.add_trace(go.Scatter(x=grid, y=[(score[y == 0] > t).mean() for t in grid], name="false-positive rate"))
    sweep.add_trace(go.Scatter(x=grid, y=[(score[y == 1] > t).mean() for t in grid], name="detection rate"))
    sweep.add_vline(x=thresholds["ensemble"], line_dash="dash", annotation_text="calibrated threshold")
    sweep.update_layout(title="Threshold sweep of the ensemble score", xaxis_title="threshold on ensemble_score",
                        xaxis_type="log", yaxis_title="rate")
    figures.append(sweep)
    return figures


def _table(result: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{v['n']}</td><td>{v['detection_rate']:.4f}</td>"
        f"<td>{v['mean_ae_error']:.4g}</td><td>{v['std_ae_error']:.4g}</td><td>{v['min_ae_error']:.4g}"
        f" - {v['max_ae_error']:.4g}</td></tr>" for c, v in result["per_class"].items())
    binary = "".join(
        f"<tr><td>{n}</td>" + "".join(f"<td>{m[k]:.4f}</td>" for k in ("roc_auc", "pr_auc", "tpr", "fpr", "precision", "f1", "accuracy"))
        + "</tr>" for n, m in result["binary"].items())
    return (
        "<h2>Binary metrics (held-out rows)</h2><table><tr><th>detector</th><th>ROC-AUC</th><th>PR-AUC</th><th>TPR</th>"
        f"<th>FPR</th><th>precision</th><th>F1</th><th>accuracy</th></tr>{binary}</table>"
        "<h2>Per class: ensemble detection and reconstruction error</h2><table><tr><th>class</th><th>n</th>"
        f"<th>detection rate</th><th>mean MSE</th><th>std MSE</th><th>range</th></tr>{rows}</table>")


def write_html(path: str | Path, result: dict[str, Any], scored: pd.DataFrame, thresholds: dict[str, float]) -> None:
    figures = build_figures(result, scored, thresholds)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    summary = {k: result[k] for k in ("model_version", "n_rows", "multiclass", "category")}
    summary["leakage"] = {k: v for k, v in result["leakage"].items() if not isinstance(v, dict)}
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>IoMT-AD evaluation "
        f"{html.escape(str(result['model_version']))}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>"
        f"</head><body><h1>IoMT-AD evaluation: model {html.escape(str(result['model_version']))}</h1>"
        f"<p>{html.escape(result['held_out'])}</p><pre>{html.escape(json.dumps(summary, indent=1))}</pre>"
        f"{_table(result)}{''.join(parts)}</body></html>")
    Path(path).write_text(page, encoding="utf-8")

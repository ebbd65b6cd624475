"""Throughput of the pure scoring core behind the pandas UDFs, per model and for the ensemble.

Each (thread count) measurement runs in its own subprocess pinned to that many cores, with
TensorFlow, OpenMP and BLAS limited to as many threads, so "1core" really is one core.
Rows are real: the project's sample, tiled when a batch is larger than the sample.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BATCH_SIZES: tuple[int, ...] = (256, 4096, 65536)
MODELS: tuple[str, ...] = ("ensemble", "lstm_ae", "iforest", "classifier")


def _limit_threads(threads: int) -> None:
    os.sched_setaffinity(0, set(range(threads)))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def _scorers(bundle) -> dict[str, Callable[[Any], Any]]:
    from udfs.scoring import score_frame

    pre = bundle.preprocessor.transform
    return {
        "ensemble": lambda pdf: score_frame(pdf, bundle),
        "lstm_ae": lambda pdf: bundle.lstm_ae.score(pre(pdf)),
        "iforest": lambda pdf: bundle.iforest.score(pre(pdf)),
        "classifier": lambda pdf: bundle.classifier.predict(bundle.classifier.inputs(bundle.preprocessor, pdf)),
    }


def _rows_per_second(scorer: Callable[[Any], Any], batch, min_seconds: float, repeats: int) -> float:
    scorer(batch)  # warm-up: tracing, caches
    rates = []
    for _ in range(repeats):
        calls = 0
        started = time.perf_counter()
        while True:
            scorer(batch)
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
        rates.append(calls * len(batch) / elapsed)
    return float(statistics.median(rates))


def measure_in_process(bundle_dir: str, data_dir: str, threads: int, batch_sizes: Sequence[int],
                       min_seconds: float, repeats: int) -> dict[str, dict[str, float]]:
    _limit_threads(threads)
    from models.training.datasets import load_flows_pandas
    from models.bundle import load_bundle
    from schemas.flow_record import FEATURES

    bundle = load_bundle(bundle_dir)
    rows = load_flows_pandas([data_dir])[list(FEATURES)]
    result: dict[str, dict[str, float]] = {model: {} for model in MODELS}
    for size in batch_sizes:
        batch = rows.iloc[np.arange(size) % len(rows)].reset_index(drop=True)
        for model, scorer in _scorers(bundle).items():
            result[model][str(size)] = round(_rows_per_second(scorer, batch, min_seconds, repeats), 1)
            log.info("%d thread(s) %s batch %d: %.0f rows/s", threads, model, size, result[model][str(size)])
    return result


def measure(bundle_dir: Path, data_dir: Path, threads: int, batch_sizes: Sequence[int] = BATCH_SIZES,
            min_seconds: float = 2.0, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Run :func:`measure_in_process` in a fresh interpreter limited to ``threads`` cores."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads),
               TF_NUM_INTEROP_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    code = ("import json,sys,logging; logging.basicConfig(level=logging.INFO); "
            "from jobs.bench.scoring import measure_in_process as m; "
            f"print('RESULT'+json.dumps(m({str(bundle_dir)!r},{str(data_dir)!r},{threads},"
            f"{list(batch_sizes)!r},{min_seconds},{repeats})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"scoring benchmark failed:\n{done.stderr[-3000:]}")
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])

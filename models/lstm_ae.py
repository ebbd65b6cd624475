"""LSTM autoencoder trained on benign rows; its score is the per-row reconstruction MSE.

Input shape ``(batch, timesteps, n_features)``. With ``timesteps=1`` (the stock bundles, trained on
CICIoMT2024 rows, which carry no device or order) each flow record is a sequence of one. A bundle
trained on a site's captures may read a device's last ``timesteps`` windows instead
(``iomt-ad baseline --timesteps K``): each record is then the last step of a sequence built by
:mod:`models.sequences` (its inputs plus the ``window_gap`` between steps), and its score is the
reconstruction MSE over the whole sequence.
Scoring calls the Keras model through one ``tf.function`` with a fixed input signature on fixed-size
chunks (the last one padded), so the graph is traced once per worker and no ``predict()`` loop runs per
row. Measured on one core at chunk 4096 (TF 2.20, CPU shared with other jobs): eager ``model(x)``
13k rows/s, ``predict_on_batch`` 120k, the traced function 126k, the traced function with the LSTMs
unrolled (``timesteps`` is 1, so unrolling removes the while loop) 152k rows/s.

Serving: the bundle also holds the trained model converted to TensorFlow Lite (``to_tflite``), run by
LiteRT (``ai-edge-litert``, TensorFlow's standalone inference runtime). A scoring worker then never
imports TensorFlow: measured on one shared core at chunk 4096, ~50 MB resident instead of ~600 MB and
~600k rows/s instead of ~230k, outputs equal to Keras' within 1e-5. Bundles without the file, or
``IOMT_AD_AE_RUNTIME=keras``, use Keras.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 4096


class KerasMissingError(ImportError):
    """TensorFlow/Keras is not installed."""


def _keras():
    try:
        import tensorflow as tf
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise KerasMissingError("the LSTM autoencoder needs TensorFlow: pip install tensorflow-cpu==2.20.0") from error
    return tf


@dataclass(frozen=True)
class LstmAeConfig:
    """Defaults chosen by validation ROC-AUC (benign validation vs classifier-train attacks, rows the
    AE never sees): encoder (32, 16) + latent 8 reached 0.956 (198 epochs, batch 32), (64, 32) + 16
    0.950, and (32, 16) + 8 stopped at 80 epochs of batch 64 only 0.948."""

    timesteps: int = 1
    units: tuple[int, ...] = (32, 16)
    latent: int = 8
    epochs: int = 250
    batch_size: int = 32
    learning_rate: float = 2e-3
    patience: int = 25
    validation_fraction: float = 0.1
    seed: int = 0
    max_gap_s: float = 600.0  # timesteps > 1: a device's windows further apart start a new sequence

    @property
    def sequential(self) -> bool:
        """True when the model reads a device's sequence of windows (plus the window_gap input)."""
        return self.timesteps > 1

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["units"] = list(self.units)
        return values


def to_sequences(x: np.ndarray, timesteps: int) -> np.ndarray:
    """(n, f) -> (n, timesteps, f): each record repeated ``timesteps`` times (1: a plain reshape)."""
    x = np.asarray(x, dtype=np.float32)
    return np.repeat(x[:, None, :], timesteps, axis=1) if timesteps > 1 else x[:, None, :]


class LiteForward:
    """One LiteRT interpreter on one thread, its input sized once to (chunk, timesteps, features)."""

    def __init__(self, path: Path, chunk_size: int, timesteps: int, n_features: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self.interpreter.resize_tensor_input(self._input, (chunk_size, timesteps, n_features))
        self.interpreter.allocate_tensors()

    def __call__(self, seq: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input, np.ascontiguousarray(seq, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)


@dataclass
class LstmAutoencoder:
    """A trained model plus the chunked scorer. ``model`` is the Keras model (None when only the
    LiteRT file was loaded for serving); ``lite`` the LiteRT runner, used first when present."""

    model: Any
    config: LstmAeConfig
    chunk_size: int = DEFAULT_CHUNK
    history: dict[str, list[float]] = field(default_factory=dict)
    lite: LiteForward | None = None
    _traced: Any = field(default=None, init=False, repr=False)

    @property
    def runtime(self) -> str:
        return "litert" if self.lite is not None else "keras"

    def _forward(self, seq: np.ndarray) -> np.ndarray:
        if self.lite is not None:
            return self.lite(seq)
        if self._traced is None:
            tf = _keras()
            spec = tf.TensorSpec((self.chunk_size, self.config.timesteps, seq.shape[-1]), tf.float32)
            model = self.model
            self._traced = tf.function(lambda batch: model(batch, training=False), input_signature=[spec])
        return np.asarray(self._traced(seq))

    def reconstruction_errors(self, x: np.ndarray) -> np.ndarray:
        """Per-feature squared error (n, f), mean over timesteps, computed in fixed-size chunks.
        A sequential model reads each row as a sequence of its own (no context: every step the row,
        ``window_gap`` 0) and returns (n, f + 1), the last column the ``window_gap`` input's."""
        x = np.asarray(x, dtype=np.float32)
        if self.config.sequential:
            lone = np.concatenate([x, np.zeros((len(x), 1), np.float32)], axis=1)
            return self.sequence_errors(np.repeat(lone[:, None, :], self.config.timesteps, axis=1))
        n, n_features = x.shape
        out = np.empty((n, n_features), dtype=np.float32)
        chunk = self.chunk_size
        for start in range(0, n, chunk):
            part = x[start:start + chunk]
            size = part.shape[0]
            if size < chunk:  # pad: one traced shape for every call
                part = np.concatenate([part, np.zeros((chunk - size, n_features), np.float32)])
            seq = to_sequences(part, self.config.timesteps)
            recon = self._forward(seq)
            out[start:start + size] = ((recon - seq) ** 2).mean(axis=1)[:size]
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        """Reconstruction MSE per row (higher = more anomalous)."""
        return self.reconstruction_errors(x).mean(axis=1)

    def sequence_errors(self, seq: np.ndarray) -> np.ndarray:
        """Per-input squared error (n, inputs) of whole sequences (n, timesteps, inputs), mean over
        the steps, computed in fixed-size chunks (:func:`models.sequences.sequence_inputs`)."""
        seq = np.asarray(seq, dtype=np.float32)
        n, steps, width = seq.shape
        out = np.empty((n, width), dtype=np.float32)
        chunk = self.chunk_size
        for start in range(0, n, chunk):
            part = seq[start:start + chunk]
            size = part.shape[0]
            if size < chunk:
                part = np.concatenate([part, np.zeros((chunk - size, steps, width), np.float32)])
            recon = self._forward(part)
            out[start:start + size] = ((recon - part) ** 2).mean(axis=1)[:size]
        return out

    def save(self, path: Path) -> None:
        self.model.save(path)

    @classmethod
    def load(cls, path: Path, config: LstmAeConfig, chunk_size: int = DEFAULT_CHUNK) -> "LstmAutoencoder":
        tf = _keras()
        # safe_mode: a Lambda layer's stored code is refused, not run
        return cls(model=tf.keras.models.load_model(path, compile=False, safe_mode=True), config=config,
                   chunk_size=chunk_size)

    @classmethod
    def load_lite(cls, path: Path, config: LstmAeConfig, n_features: int,
                  chunk_size: int = DEFAULT_CHUNK) -> "LstmAutoencoder":
        """The serving form: LiteRT only, no TensorFlow import."""
        return cls(model=None, config=config, chunk_size=chunk_size,
                   lite=LiteForward(path, chunk_size, config.timesteps, n_features))


def config_from_dict(values: dict[str, Any]) -> LstmAeConfig:
    values = dict(values)
    values["units"] = tuple(values["units"])
    return LstmAeConfig(**values)


def top_features(errors: np.ndarray, features: Sequence[str], k: int = 3) -> list[list[str]]:
    """Names of the ``k`` features with the largest reconstruction error per row (largest first;
    ties broken by feature order; NaN errors last, as ``argsort`` puts them)."""
    errors = np.array(errors, dtype=np.float64)  # a copy: picked entries are masked below
    if errors.ndim != 2 or errors.shape[0] == 0:
        return [[] for _ in range(errors.shape[0] if errors.ndim == 2 else 0)]
    k = min(k, errors.shape[1])
    names = np.asarray(features, dtype=object)
    if np.isnan(errors).any() or np.isneginf(errors).any():  # rare: the stable argsort keeps NaN last
        order = np.argsort(-errors, axis=1, kind="stable")[:, :k]
        return names[order].tolist()
    # k passes of argmax (first maximum = lowest feature index on ties) instead of a full sort
    rows = np.arange(errors.shape[0])
    order = np.empty((errors.shape[0], k), dtype=np.intp)
    for i in range(k):
        order[:, i] = best = errors.argmax(axis=1)
        errors[rows, best] = -np.inf
    return names[order].tolist()

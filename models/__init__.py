"""IoMT-AD's detectors: what scoring needs, apart from how they are trained.

Serving (this package's modules; what the Python workers of the stream and of re-scoring import):
:mod:`models.bundle` (read, verify and load a bundle), :mod:`models.preprocess` (imputation, log
transform, scaling with frozen values), :mod:`models.lstm_ae` (the autoencoder on LiteRT or Keras),
:mod:`models.iforest`, :mod:`models.classifier`, :mod:`models.ensemble`, :mod:`models.thresholds` and
:mod:`models.compiled` (the forests on onnxruntime). Nothing here imports ``jobs`` or the training code.

Training and analysis (:mod:`models.training`): reading the dataset, the split, fitting each part,
compiling the serving forms, writing bundles, model selection, evaluation and the evidence for the
targets missed. Bundles live in ``models/<version>/``.
"""
from pathlib import Path
from typing import Final

DEFAULT_VERSION: Final[str] = "v3"
# The committed default bundle, as a path relative to the project root (configuration files, the
# streaming job's working directory) and as an absolute path (CLIs that read it from anywhere).
DEFAULT_BUNDLE: Final[Path] = Path("models") / DEFAULT_VERSION
DEFAULT_BUNDLE_PATH: Final[Path] = Path(__file__).resolve().parent / DEFAULT_VERSION

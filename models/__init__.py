"""Training code for IoMT-AD's detectors and the versioned bundles they are saved in.

Modules: :mod:`models.preprocess` (imputation, log transform, scaling), :mod:`models.split`
(deterministic row-identity split), :mod:`models.lstm_ae`, :mod:`models.iforest`,
:mod:`models.classifier`, :mod:`models.thresholds`, :mod:`models.ensemble` and
:mod:`models.bundle` (save / load / verify a bundle directory); :mod:`models.evaluation`,
:mod:`models.evidence` and :mod:`models.selection` measure them. Bundles live in ``models/<version>/``.
"""
from pathlib import Path
from typing import Final

DEFAULT_VERSION: Final[str] = "v2"
# The committed default bundle, as a path relative to the project root (configuration files, the
# streaming job's working directory) and as an absolute path (CLIs that read it from anywhere).
DEFAULT_BUNDLE: Final[Path] = Path("models") / DEFAULT_VERSION
DEFAULT_BUNDLE_PATH: Final[Path] = Path(__file__).resolve().parent / DEFAULT_VERSION

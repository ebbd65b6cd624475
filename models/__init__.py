"""Training code for IoMT-AD's detectors and the versioned bundles they are saved in.

Modules: :mod:`models.preprocess` (imputation, log transform, scaling), :mod:`models.split`
(deterministic row-identity split), :mod:`models.lstm_ae`, :mod:`models.iforest`,
:mod:`models.classifier`, :mod:`models.thresholds`, :mod:`models.ensemble` and
:mod:`models.bundle` (save / load / verify a bundle directory). Bundles live in ``models/<version>/``.
"""

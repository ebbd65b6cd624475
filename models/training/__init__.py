"""Training and analysis of the detectors (never imported by scoring): the CICIoMT2024 reader
(:mod:`~models.training.datasets`), the row split, fitting the preprocessing, the autoencoder, the
Isolation Forest, the classifier, the thresholds and the ensemble, compiling the forests to ONNX,
writing bundles (:mod:`~models.training.bundle_writer`), the training pipeline
(:mod:`~models.training.pipeline`), model selection, evaluation, the evidence report."""

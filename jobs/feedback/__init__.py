"""Analysts' feedback on alerts and incidents (``iomt-ad feedback``, the operator dashboard): true or
false positive and the corrected class, kept in the ``feedback`` Delta table for training and evaluation."""

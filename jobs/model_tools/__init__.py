"""Commands around the model bundles: ``train``, ``evaluate``, ``compile``, ``check_data`` and
``explore`` (the work itself lives in ``models.training``)."""

"""Drift: how far the stream's traffic has moved from the bundle's reference (:mod:`models.drift`),
per hour of event time and device group.

Each task counts its partition's records per bin of the champion's reference (:mod:`jobs.drift.counts`,
on the executors: no record leaves them); the driver adds the batch's counts to the hour's and
writes the PSI of every measure to the ``drift`` Delta table and InfluxDB's ``model_drift``
(:mod:`jobs.drift.hourly`); settings under ``drift`` in the configuration (:mod:`jobs.drift.config`).
"""

"""Incident outputs: the stream queues each incident update in the ``outbox`` table (exactly once per
batch, :mod:`jobs.outputs.outbox`); a notifier (:mod:`jobs.outputs.notifier`) delivers the queued
updates to each configured output at least once, apart from the stream (syslog with CEF, OCSF
Detection Findings to Kafka and a webhook, a Slack-compatible webhook)."""

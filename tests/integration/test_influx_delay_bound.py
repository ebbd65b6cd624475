"""A slow or dead InfluxDB delays a batch by at most ``influxdb.max_batch_delay_s``: against a host
that accepts connections and never answers, the writer gives up by the bound (plus a margin) and
counts every point failed. Without the bound this configuration waits ~44 s (4 attempts of 10 s
plus backoff)."""
from __future__ import annotations

import time

import pytest

from jobs.config import ConfigError, InfluxConfig
from jobs.stream.influx_writer import InfluxPointsWriter
from jobs.stream.writers import BatchOutput
from schemas.tables import FLOWS_SCORED
from tests.helpers.influx import SilentServer
from tests.integration.test_influxdb import _scored, _tasks

BOUND_S = 2.0
MARGIN_S = 6.0  # generous: a loaded 2-core machine; the unbounded writer takes ~44 s


def test_a_silent_influxdb_delays_a_batch_by_at_most_the_bound(monkeypatch) -> None:
    monkeypatch.setenv("IOMT_TEST_TOKEN", "x")
    tasks = list(_tasks(_scored(300), batches=1, partitions=3))
    with SilentServer() as server:
        writer = InfluxPointsWriter(InfluxConfig(
            enabled=True, url=server.url, org="iomt", bucket="iomt", token_env="IOMT_TEST_TOKEN", batch_size=40,
            timeout_ms=10_000, max_retries=3, parallel_writes=2, max_batch_delay_s=BOUND_S))
        try:
            started = time.monotonic()
            outcomes = [writer.write(BatchOutput(batch_id=b, partition=p, tables={FLOWS_SCORED: t}))
                        for b, p, t in tasks]
            elapsed = time.monotonic() - started
        finally:
            writer.close()
        assert server.accepted, "the writer never reached the silent server"
    # all three tasks of the batch together: the first waits its bound, the others give up at once
    assert elapsed < BOUND_S + MARGIN_S, f"the batch waited {elapsed:.1f} s for InfluxDB"
    assert elapsed >= BOUND_S * 0.9  # it did try, for its bound
    assert all(o.written == 0 and o.failed > 0 and o.error for o in outcomes)


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_batch_delay_s"):
        InfluxConfig(max_batch_delay_s=0)

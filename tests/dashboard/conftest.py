"""One real run of the streaming job for the dashboard tests: the project's sample replayed as JSON
files, scored by the job (files source, availableNow), written to Delta tables and to a real InfluxDB.
The Grafana queries, the operator dashboard and the browser test all read what this run wrote.

As in the Compose stack, ``iomt-ad influx-tokens`` makes the tokens: the job writes with a token
that may only write the bucket, and the Grafana queries read with one that may only read it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers.streaming import BUNDLE, run_to_end

N_RECORDS = 1500
ADMIN_TOKEN_ENV = "IOMT_AD_TEST_INFLUX_ADMIN_TOKEN"


@dataclass(frozen=True)
class StreamRun:
    tables_dir: Path
    influx_url: str
    records: int
    grafana_token: str  # read-only, the bucket only


@pytest.fixture(scope="session")
def streamed(spark, influxdb, sample_dir, tmp_path_factory) -> StreamRun:
    from jobs.cli import main
    from jobs.config import load_config
    from models.training.datasets import load_flows_pandas
    from jobs.ops.replay import ReplayOptions, replay
    from jobs.publish import DirectorySink
    from tests.services.influxdb_server import BUCKET, ORG, TOKEN

    tmp = tmp_path_factory.mktemp("dashboard-stream")
    sent = replay(load_flows_pandas([sample_dir]), DirectorySink(tmp / "incoming", records_per_file=500),
                  ReplayOptions(rate=0, limit=N_RECORDS, shuffle=True, seed=5), progress=False)
    assert sent == N_RECORDS
    conf = {
        "spark": {"master": "local[2]", "conf": {"spark.ui.enabled": False, "spark.sql.shuffle.partitions": 2,
                                                  "spark.sql.session.timeZone": "UTC",
                                                  "spark.sql.execution.arrow.maxRecordsPerBatch": 500}},
        "stream": {"source": "files", "files": {"path": str(tmp / "incoming"), "max_files_per_trigger": 1},
                   "tables_dir": str(tmp / "delta"), "trigger": "availableNow", "model_dir": str(BUNDLE)},
        "influxdb": {"enabled": True, "url": influxdb.url, "org": ORG, "bucket": BUCKET,
                     "token_env": None, "token_file": str(tmp / "tokens" / "job.token"), "max_retries": 1},
    }
    (tmp / "conf.yaml").write_text(yaml.safe_dump(conf))
    os.environ[ADMIN_TOKEN_ENV] = TOKEN  # the operator token of the throwaway test server
    assert main(["influx-tokens", "--conf", str(tmp / "conf.yaml"), "--admin-token-env", ADMIN_TOKEN_ENV,
                 "--grafana-token-file", str(tmp / "tokens" / "grafana.token")]) == 0
    run_to_end(spark, load_config(tmp / "conf.yaml"))
    # the drift points are sent from a thread of the driver's own: wait until they hold the table's figures
    from deltalake import DeltaTable

    from schemas.influx import DRIFT_MEASUREMENT
    from tests.helpers.influx import wait_for_total

    drift_records = DeltaTable(str(tmp / "delta" / "drift")).to_pandas(columns=["records"])["records"].sum()
    assert wait_for_total(influxdb, BUCKET, DRIFT_MEASUREMENT, "records", drift_records) == drift_records
    return StreamRun(tables_dir=tmp / "delta", influx_url=influxdb.url, records=N_RECORDS,
                     grafana_token=(tmp / "tokens" / "grafana.token").read_text())

"""A real Spark standalone cluster on loopback: one master and two workers started with pyspark's
own classes (``spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), sized
for a small shared machine (1 core and 1 GiB per worker). Started once per test session, stopped
(workers, then master) at the end; its logs and work directories stay under the session's tmp dir.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.ports import free_port, wait_for_port

log = logging.getLogger(__name__)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class StandaloneCluster:
    """``start()`` / ``stop()``; ``url`` is the master URL for ``spark-submit --master``."""

    def __init__(self, work_dir: Path, workers: int = 2, worker_cores: int = 1, worker_memory: str = "1g") -> None:
        self.work_dir = work_dir
        self.workers = workers
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.master_port = free_port()
        self.master_ui_port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def worker_dir(self, index: int) -> Path:
        return self.work_dir / f"worker-{index}"

    def env(self) -> dict[str, str]:
        conf_dir = self.work_dir / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)  # empty: nothing from a developer's own Spark set-up
        return dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP="127.0.0.1",
                    SPARK_CONF_DIR=str(conf_dir), SPARK_DAEMON_MEMORY="256m",
                    SPARK_LOG_DIR=str(self.work_dir / "logs"), PYSPARK_PYTHON=sys.executable)

    def _launch(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        logs = self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        command = [str(spark_home() / "bin" / "spark-class"), *args]
        process = subprocess.Popen(command, stdout=(logs / f"{name}.out").open("wb"), stderr=subprocess.STDOUT,
                                   env=self.env(), cwd=self.work_dir, start_new_session=True)
        self.processes.append(process)
        return process

    def start(self, timeout_s: float = 120) -> None:
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(self.master_port), "--webui-port", str(self.master_ui_port)])
        wait_for_port(self.master_port, timeout_s)
        for index in range(self.workers):
            work = self.worker_dir(index)
            work.mkdir(parents=True, exist_ok=True)
            self._launch(f"worker-{index}", [
                "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(free_port()),
                "--webui-port", str(free_port()), "--cores", str(self.worker_cores),
                "--memory", self.worker_memory, "--work-dir", str(work), self.url])
        deadline = time.monotonic() + timeout_s
        while self.alive_workers() < self.workers:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Spark daemon exited ({process.args[1]}); see {self.work_dir / 'logs'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.alive_workers()} of {self.workers} workers registered; "
                                   f"see {self.work_dir / 'logs'}")
            time.sleep(0.5)
        log.info("Spark standalone cluster %s with %d workers", self.url, self.workers)

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=5) as response:
            return json.loads(response.read())

    def alive_workers(self) -> int:
        try:
            return int(self.state().get("aliveworkers", 0))
        except OSError:
            return 0

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers (and their executors) first, the master last
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-standalone"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()

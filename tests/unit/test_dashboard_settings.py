"""The operator dashboard builds its settings on every refresh: the job's configuration (for
``stream.storage``) is read again only when the file changes."""
from __future__ import annotations

import os

from jobs.dashboard.data import DashboardSettings
from models import DEFAULT_BUNDLE_PATH


def test_the_job_configuration_is_read_once_until_it_changes(tmp_path, monkeypatch) -> None:
    import jobs.config

    reads = []
    real_load = jobs.config.load_config
    monkeypatch.setattr(jobs.config, "load_config", lambda path: reads.append(path) or real_load(path))
    conf = tmp_path / "conf.yaml"
    conf.write_text("stream:\n  storage:\n    endpoint: http://127.0.0.1:8333\n    allow_http: true\n")
    settings = DashboardSettings(tables_dir="s3://bucket/tables", model_dir=DEFAULT_BUNDLE_PATH, conf_path=conf)
    for _ in range(3):  # three refreshes, each with its own settings
        location = DashboardSettings(**vars(settings)).tables
    assert location.storage.endpoint == "http://127.0.0.1:8333" and len(reads) == 1

    conf.write_text("stream:\n  storage:\n    endpoint: http://127.0.0.1:9444\n    allow_http: true\n")
    stat = conf.stat()
    os.utime(conf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later edit, whatever the clock
    assert settings.tables.storage.endpoint == "http://127.0.0.1:9444" and len(reads) == 2

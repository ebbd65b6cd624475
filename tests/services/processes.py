"""Stopping a service's process and removing what it left behind."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def stop_service(process: subprocess.Popen | None, timeout_s: float, work_dir: Path | None = None) -> None:
    """Terminate ``process`` (killed after ``timeout_s``), then remove ``work_dir`` when given: the
    temporary directory a service made for itself."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)

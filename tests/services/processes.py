"""Stopping a service's process and removing what it left behind; the end of its log."""
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


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a service's log file (read before ``stop_service`` removes its directory)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"

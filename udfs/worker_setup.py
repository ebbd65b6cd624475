"""One-time fixes for the Python worker process a UDF runs in.

PySpark's worker calls ``importlib.invalidate_caches()`` before every task
(``pyspark.worker_util.setup_spark_files``). On CPython 3.10 and 3.11 a zip importer re-reads its
archive's whole directory on that call (CPython issue gh-103200, made lazy in 3.12), and a worker's
``sys.path`` holds ``pyspark.zip``, the py4j zip and the spark-core jar, with one zip importer per
imported ``pyspark`` sub-package. Measured on this project's 2-core machine: ~0.3 s of every task
with a pandas UDF (0.45-0.5 s -> ~0.15 s per query on 4 rows), which every micro-batch paid.

Those archives never change while a worker lives (Spark refuses to overwrite a file added with
``addPyFile``; a new archive gets a new importer, which reads it), so the re-read is skipped.
"""
from __future__ import annotations

import sys

_MARK = "_iomt_ad_keeps_zip_directory"


def keep_zip_directories() -> bool:
    """Make ``zipimporter.invalidate_caches`` keep the archive's directory it already read.
    True when the fix is in place (idempotent), False where it is not needed (CPython 3.12+)."""
    if sys.version_info >= (3, 12):
        return False
    import zipimport

    if getattr(zipimport.zipimporter.invalidate_caches, _MARK, False):
        return True

    def invalidate_caches(self: zipimport.zipimporter) -> None:  # noqa: ARG001 - the archive is immutable
        return None

    setattr(invalidate_caches, _MARK, True)
    invalidate_caches.original = zipimport.zipimporter.invalidate_caches  # type: ignore[attr-defined]
    zipimport.zipimporter.invalidate_caches = invalidate_caches  # type: ignore[method-assign]
    return True

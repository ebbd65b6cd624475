"""The Python worker fix: zip importers keep their archive's directory across importlib.invalidate_caches()."""
import importlib
import sys
import zipfile
import zipimport

import pytest

from udfs.worker_setup import keep_zip_directories


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython 3.12+ invalidates zip importers lazily")
def test_invalidating_caches_no_longer_rereads_zip_archives(tmp_path, monkeypatch) -> None:
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("iomt_zip_probe.py", "VALUE = 42\n")
    monkeypatch.syspath_prepend(str(archive))
    current = zipimport.zipimporter.invalidate_caches  # another test in this process may have fixed it already
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", getattr(current, "original", current))
    reads = []
    original = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory", lambda path: reads.append(path) or original(path))

    assert importlib.import_module("iomt_zip_probe").VALUE == 42
    importlib.invalidate_caches()
    assert str(archive) in reads[1:]  # without the fix, every invalidation re-reads the archive
    assert keep_zip_directories() and keep_zip_directories()  # idempotent
    before = len(reads)
    importlib.invalidate_caches()
    assert len(reads) == before
    sys.modules.pop("iomt_zip_probe")
    assert importlib.import_module("iomt_zip_probe").VALUE == 42  # imports from the archive still work

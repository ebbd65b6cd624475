"""A module-level cache so one Python worker loads a bundle once (keyed by model, version, sha256)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.bundle import Bundle, BundleTrust

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str, str], "Bundle"] = {}


def cache_key(bundle_dir: str | Path) -> tuple[str, str, str]:
    """(resolved bundle path, model version, manifest sha256): a retrained bundle at the same path
    gets a new key."""
    from models.bundle import read_manifest, sha256_of, MANIFEST

    path = Path(bundle_dir).resolve()
    manifest = read_manifest(path)
    return str(path), str(manifest["model_version"]), sha256_of(path / MANIFEST)


def get_bundle(bundle_dir: str | Path, trust: "BundleTrust | None" = None) -> "Bundle":
    """The loaded bundle for ``bundle_dir``, loading (and verifying) it on first use only. With
    ``trust``, a bundle already cached is served only if it passes it too (the pinned manifest; its
    forests not unpickled unless allowed)."""
    from models.bundle import load_bundle, read_pinned_manifest

    key = cache_key(bundle_dir)
    with _LOCK:
        bundle = _CACHE.get(key)
        if bundle is None:
            bundle = load_bundle(key[0]) if trust is None else load_bundle(key[0], trust=trust)
            _CACHE[key] = bundle
            log.info("model cache: loaded %s version %s", key[0], key[1])
        elif trust is not None:
            read_pinned_manifest(Path(key[0]), trust)  # a pin that the cached manifest does not match raises
            if not trust.allow_unpickle and bundle.classifier.compiled is None:  # loaded earlier by unpickling
                bundle = load_bundle(key[0], trust=trust)  # raises: these forests need unpickling
        return bundle


def clear() -> None:
    with _LOCK:
        _CACHE.clear()


def cached_keys() -> list[tuple[str, str, str]]:
    with _LOCK:
        return list(_CACHE)


def driver_bundle_dir(model_dir: str | Path) -> Path:
    """Where the driver finds ``model_dir``: the path itself when it exists (local runs, a shared
    path), else the copy Spark unpacked from ``--archives bundle.zip#<model_dir>`` (on the driver,
    archives land in SparkFiles' root directory, not in the working directory as on executors).
    Executors keep using the relative ``model_dir``: their working directory holds the archive."""
    path = Path(model_dir)
    if path.exists() or path.is_absolute():
        return path
    from pyspark import SparkFiles

    try:
        unpacked = Path(SparkFiles.getRootDirectory()) / path
    except Exception:  # noqa: BLE001 - no SparkContext yet: nothing was unpacked
        return path
    return unpacked if unpacked.exists() else path

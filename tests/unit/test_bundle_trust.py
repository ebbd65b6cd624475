"""The model supply chain: whoever can write a bundle directory can rewrite its manifest too. A pin
(the manifest's sha256, kept in the job's configuration) refuses any rewritten bundle, and with
unpickling refused a bundle rewritten to need its joblib files never gets them loaded: the
attacker's pickle does not run. Tested on copies of the committed default bundle."""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from jobs.config import ConfigError, config_from_mapping
from models import DEFAULT_BUNDLE_PATH
from models.bundle import (CLASSIFIER_FILE, IFOREST_FILE, MANIFEST, BundleMismatchError, BundlePinError, BundleTrust,
                           UnpickleRefusedError, check_bundle, load_bundle)
from models.compiled import CLASSIFIER_ONNX, IFOREST_ONNX
from udfs import model_cache

PINNED = hashlib.sha256((DEFAULT_BUNDLE_PATH / MANIFEST).read_bytes()).hexdigest()


class RunsCode:
    """A pickle that, when loaded, writes a file: what a hostile joblib file would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle code ran"))


@pytest.fixture()
def bundle(tmp_path) -> Path:
    target = tmp_path / "v3"
    shutil.copytree(DEFAULT_BUNDLE_PATH, target, ignore=shutil.ignore_patterns("evaluation.html"))
    return target


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(bundle: Path, marker: Path) -> None:
    """What a writer of the model directory can do: replace iforest.joblib by a pickle that runs code,
    record its sha256, and drop the ONNX forests from the manifest so that workers must unpickle it."""
    (bundle / IFOREST_FILE).write_bytes(pickle.dumps(RunsCode(marker)))
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][IFOREST_FILE] = _sha(bundle / IFOREST_FILE)
    manifest.pop("compiled")
    for name in (IFOREST_ONNX, CLASSIFIER_ONNX):
        manifest["files"].pop(name)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_the_pinned_bundle_loads(bundle) -> None:
    loaded = load_bundle(bundle, trust=BundleTrust(manifest_sha256=PINNED.upper(), allow_unpickle=False))
    assert loaded.classifier.compiled is not None and loaded.iforest.compiled is not None  # ONNX, no pickle
    assert check_bundle(bundle, BundleTrust(manifest_sha256=PINNED))[1] == PINNED


def test_a_rewritten_manifest_is_refused_by_the_pin_before_anything_loads(bundle, tmp_path) -> None:
    marker = tmp_path / "pwned"
    tamper(bundle, marker)
    trust = BundleTrust(manifest_sha256=PINNED, allow_unpickle=True, where="stream.model_trust")
    with pytest.raises(BundlePinError, match=r"is not the pinned .*stream\.model_trust\.manifest_sha256"):
        load_bundle(bundle, trust=trust)
    assert not marker.exists()
    (bundle / MANIFEST).write_bytes((DEFAULT_BUNDLE_PATH / MANIFEST).read_bytes() + b" ")  # one byte more
    with pytest.raises(BundlePinError):
        check_bundle(bundle, trust)


def test_unpickling_refused_keeps_the_attackers_pickle_from_running(bundle, tmp_path) -> None:
    marker = tmp_path / "pwned"
    tamper(bundle, marker)
    with pytest.raises(UnpickleRefusedError, match="no compiled \\(ONNX\\) forests.*allow_unpickle is false"):
        load_bundle(bundle, trust=BundleTrust(allow_unpickle=False))
    assert not marker.exists()
    # what the refusal prevents: allowed, loading runs the file's code
    try:
        load_bundle(bundle, trust=BundleTrust(allow_unpickle=True))
    except Exception:  # noqa: BLE001 - whatever the "model" then does, the code has run
        pass
    assert marker.read_text() == "pickle code ran"


def test_without_onnxruntime_the_forests_are_not_unpickled_unless_allowed(bundle, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a worker without onnxruntime
    with pytest.raises(UnpickleRefusedError, match="onnxruntime is not installed"):
        check_bundle(bundle, BundleTrust(allow_unpickle=False))
    with pytest.raises(UnpickleRefusedError, match="scikit-learn scoring was asked for"):
        check_bundle(bundle, BundleTrust(allow_unpickle=False), compiled=False)
    loaded = load_bundle(bundle, compiled=False, trust=BundleTrust(allow_unpickle=True))
    assert loaded.classifier.compiled is None and loaded.classifier.model is not None


def test_a_file_swapped_after_the_check_is_not_loaded(bundle) -> None:
    from models.bundle import _pinned_bytes, read_manifest

    manifest = read_manifest(bundle)
    check_bundle(bundle)
    (bundle / CLASSIFIER_FILE).write_bytes(b"swapped")
    with pytest.raises(BundleMismatchError, match="changed since the bundle was verified"):
        _pinned_bytes(bundle, CLASSIFIER_FILE, manifest)


def test_a_cached_bundle_is_served_only_if_it_passes_the_trust(bundle) -> None:
    model_cache.clear()
    try:
        model_cache.get_bundle(bundle)  # cached (ONNX forests)
        with pytest.raises(BundlePinError):
            model_cache.get_bundle(bundle, BundleTrust(manifest_sha256="0" * 64))
        assert model_cache.get_bundle(bundle, BundleTrust(manifest_sha256=PINNED, allow_unpickle=False))
    finally:
        model_cache.clear()


def test_a_cached_unpickled_bundle_is_not_served_where_unpickling_is_refused(bundle) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.pop("compiled")  # scikit-learn forests only
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    model_cache.clear()
    try:
        assert model_cache.get_bundle(bundle).classifier.compiled is None
        with pytest.raises(UnpickleRefusedError):
            model_cache.get_bundle(bundle, BundleTrust(allow_unpickle=False))
    finally:
        model_cache.clear()


def test_stream_model_trust_configuration() -> None:
    default = config_from_mapping({}).stream.model_trust
    assert default.manifest_sha256 is None and default.allow_unpickle is False  # refused unless allowed
    trust = config_from_mapping({"stream": {"model_trust": {"manifest_sha256": PINNED}}}).stream.model_trust
    assert trust.bundle_trust() == BundleTrust(manifest_sha256=PINNED, allow_unpickle=False,
                                               where="stream.model_trust")
    with pytest.raises(ConfigError, match="64 hex digits"):
        config_from_mapping({"stream": {"model_trust": {"manifest_sha256": "abc"}}})
    with pytest.raises(ConfigError, match="unknown keys"):
        config_from_mapping({"stream": {"model_trust": {"sha256": PINNED}}})

"""``iomt-ad dist`` (``make dist``): what a Spark cluster needs to run the IoMT-AD jobs.

Writes into ``dist/`` (default):

- ``iomt_ad.zip`` — the code the Spark jobs run, for ``spark-submit --py-files``: ``jobs`` (its
  core modules, ``jobs/stream`` and ``jobs/batch``), ``udfs``, ``schemas`` and ``models`` (serving
  only); not the benchmark, Grafana generation, model tools, operations commands, the operator
  dashboard or ``models/training``, and no model bundles;
- ``bundle-<version>.zip`` — one model bundle (its manifest, the model files the manifest pins and
  ``evaluation.json``) at the archive's root, for ``--archives dist/bundle-v3.zip#model`` with
  ``stream.model_dir: model`` / ``--model model``;
- ``score_stream.py`` and ``rescore_batch.py`` — the spark-submit entry points;
- ``conf/`` — the YAML configurations and Spark/log4j settings of ``conf/``;
- ``dist.json`` — what was built: files, sizes, sha256, bundle version.

Archives are deterministic (sorted entries, fixed timestamps): building twice gives the same bytes.
The Python dependencies themselves (pandas, pyarrow, TensorFlow...) are not here: executors get them
from a packed environment or the Docker image (docs/cluster.md).
"""
from __future__ import annotations


import argparse
import hashlib
import json
import logging
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import UserError
from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PACKAGES: tuple[str, ...] = ("jobs", "udfs", "schemas", "models")
# what no Spark job imports: left out of the --py-files zip
NOT_SHIPPED: tuple[str, ...] = ("jobs/cli.py", "jobs/publish.py", "jobs/bench", "jobs/grafana", "jobs/model_tools",
                                "jobs/ops", "jobs/dashboard", "jobs/sensor", "jobs/feedback", "models/training",
                                "jobs/incidents/command.py", "jobs/incidents/overview.py", "jobs/outputs/command.py")
PY_FILES_ZIP = "iomt_ad.zip"
# source -> the name spark-submit is given (kept from the first releases: users' scripts name them)
ENTRY_POINTS: dict[str, str] = {"jobs/stream/score_stream.py": "score_stream.py",
                                "jobs/batch/rescore.py": "rescore_batch.py"}
CONF_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".conf", ".properties")
BUNDLE_EXTRA_FILES: tuple[str, ...] = ("evaluation.json",)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class DistError(UserError, RuntimeError):
    """The distribution cannot be built; the message says what is missing."""


@dataclass(frozen=True)
class DistResult:
    out_dir: Path
    py_files: Path
    bundle: Path
    bundle_version: str
    entry_points: tuple[Path, ...]
    conf_dir: Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_zip(target: Path, members: Iterable[tuple[str, Path]]) -> int:
    """A deterministic zip of (name in archive, file) pairs; returns the number of entries."""
    entries = sorted(members)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    tmp.replace(target)
    return len(entries)


def package_members(repo: Path = REPO, packages: Iterable[str] = PACKAGES,
                    left_out: Iterable[str] = NOT_SHIPPED) -> Iterator[tuple[str, Path]]:
    """The ``.py`` files of the project's packages that the jobs run (``left_out``, bundles, caches
    and data are left out)."""
    left_out = tuple(left_out)
    for package in packages:
        root = repo / package
        if not (root / "__init__.py").is_file():
            raise DistError(f"{root} is not a Python package (no __init__.py)")
        for path in root.rglob("*.py"):
            relative = path.relative_to(repo)
            if "__pycache__" in relative.parts or any(
                    relative.as_posix() == skip or relative.as_posix().startswith(skip + "/") for skip in left_out):
                continue
            # every directory on the way must be a package, or it is data (a bundle), not code
            if all((repo / Path(*relative.parts[:i]) / "__init__.py").is_file()
                   for i in range(1, len(relative.parts))):
                yield relative.as_posix(), path


def bundle_members(bundle_dir: Path) -> tuple[str, list[tuple[str, Path]]]:
    """(model version, members) of a bundle, after checking it against this code's schema."""
    from models.bundle import MANIFEST, read_manifest, verify_manifest

    manifest = read_manifest(bundle_dir)
    verify_manifest(bundle_dir, manifest)
    names = [MANIFEST, *sorted(manifest.get("files", {}))]
    names += [name for name in BUNDLE_EXTRA_FILES if (bundle_dir / name).is_file()]
    return str(manifest["model_version"]), [(name, bundle_dir / name) for name in names]


def build(out_dir: Path, model_dir: Path, repo: Path = REPO) -> DistResult:
    """Build the py-files zip, the bundle archive, the entry points and the conf copy in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    py_files = out_dir / PY_FILES_ZIP
    n_modules = _write_zip(py_files, package_members(repo))
    log.info("%s: %d modules", py_files, n_modules)

    version, members = bundle_members(model_dir)
    bundle = out_dir / f"bundle-{version}.zip"
    _write_zip(bundle, members)
    log.info("%s: bundle %s (%d files) from %s", bundle, version, len(members), model_dir)

    entry_points = []
    for entry, name in ENTRY_POINTS.items():
        source = repo / entry
        if not source.is_file():
            raise DistError(f"{source}: entry point missing")
        target = out_dir / name
        shutil.copyfile(source, target)
        entry_points.append(target)

    conf_dir = out_dir / "conf"
    if conf_dir.exists():
        shutil.rmtree(conf_dir)
    conf_dir.mkdir()
    for path in sorted((repo / "conf").iterdir()):
        if path.is_file() and path.suffix in CONF_SUFFIXES:
            shutil.copyfile(path, conf_dir / path.name)

    files = [py_files, bundle, *entry_points, *sorted(conf_dir.iterdir())]
    summary = {
        "bundle_version": version,
        "py_files": py_files.name,
        "bundle": bundle.name,
        "files": {path.relative_to(out_dir).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
                  for path in files},
    }
    (out_dir / "dist.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return DistResult(out_dir=out_dir, py_files=py_files, bundle=bundle, bundle_version=version,
                      entry_points=tuple(entry_points), conf_dir=conf_dir)




def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output directory (default dist/)")
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE,
                        help=f"the bundle to archive (default {DEFAULT_BUNDLE})")


def run(args: argparse.Namespace) -> int:
    result = build(args.out, args.model)
    import sys

    sys.stdout.write(
        f"built {result.out_dir}/: {result.py_files.name} (--py-files), {result.bundle.name} "
        f"(--archives {result.bundle}#model), {', '.join(p.name for p in result.entry_points)}, conf/\n")
    return 0

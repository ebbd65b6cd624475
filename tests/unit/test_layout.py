"""The layout the README promises: every room of the tree in its layout table, and the embedded
default's set-up free of the test services."""
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_layout_table_names_every_folder() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w./-]+)`", table))
    for parent in ("jobs", "models", "tests"):
        for folder in sorted(p for p in (REPO / parent).iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
            relative = folder.relative_to(REPO).as_posix()
            assert f"{relative}/" in named or folder.name + "/" in named, f"README layout table lacks {relative}/"


def test_make_demo_sets_up_neither_kafka_nor_influxdb() -> None:
    planned = subprocess.run(["make", "-n", "-B", "demo"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "iomt-ad demo" in planned and "fetch_jars.sh" in planned
    assert "install_services.sh" not in planned and "build_influxd" not in planned

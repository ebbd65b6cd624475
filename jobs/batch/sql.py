"""``iomt-ad sql``: analyst queries over the Delta tables, each registered by name.

Every Delta table under ``stream.tables_dir`` (``flows_scored``, ``alerts``, ``quarantine``,
``traffic_1m``, ``batch_log``, ``flows_rescored``, ``scoring_runs``) becomes a temporary view of
that name, so ``iomt-ad sql "SELECT count(*) FROM alerts"`` just works. The documented example
queries live in ``docs/queries.sql`` (``--list-examples``, ``--example NAME``); CI runs every one of
them over tables the streaming and re-scoring jobs wrote. Tables are described in docs/tables.md.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.config import ConfigError, load_config
from jobs.storage import TablesLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_QUERIES = REPO / "docs" / "queries.sql"
FORMATS: tuple[str, ...] = ("table", "csv", "json")
_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[A-Za-z0-9_]+)\s*$")


@dataclass(frozen=True)
class ExampleQuery:
    name: str
    description: str
    sql: str


def delta_tables(tables: TablesLocation | Path | str) -> dict[str, str]:
    """The Delta tables directly under ``tables`` (a ``_delta_log`` inside), by view name: their
    addresses as Spark reads them (a path, or ``s3a://`` on an object store)."""
    location = tables if isinstance(tables, TablesLocation) else TablesLocation.of(tables)
    return {name: location.spark_uri(name) for name in location.table_names() if _VIEW_NAME.match(name)}


def register_tables(spark: "SparkSession", tables: TablesLocation | Path | str) -> list[str]:
    """Register every Delta table under ``tables`` as a temporary view named like the table."""
    found = delta_tables(tables)
    if not found:
        raise ConfigError(f"no Delta tables under {getattr(tables, 'root', tables)}: check stream.tables_dir in "
                          "the configuration (the streaming job writes the tables there)")
    for name, uri in found.items():
        spark.read.format("delta").load(uri).createOrReplaceTempView(name)
    log.info("views: %s (from %s)", ", ".join(found), getattr(tables, "root", tables))
    return list(found)


def load_examples(path: Path = DEFAULT_QUERIES) -> list[ExampleQuery]:
    """Example queries from a SQL file: each starts with ``-- name: <name>``, then ``--`` lines of
    description, then one statement ending with ``;``."""
    examples: list[ExampleQuery] = []
    name: str | None = None
    description: list[str] = []
    body: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _NAME_LINE.match(line.strip())
        if match:
            name, description, body = match.group("name"), [], []
            continue
        if name is None:
            continue
        if not body and line.strip().startswith("--"):
            description.append(line.strip()[2:].strip())
            continue
        if line.strip():
            body.append(line.rstrip())
        if line.rstrip().endswith(";"):
            examples.append(ExampleQuery(name, " ".join(description).strip(), "\n".join(body).rstrip(";").strip()))
            name, description, body = None, [], []
    if name is not None:
        raise ValueError(f"{path}: query {name!r} does not end with ';'")
    return examples


def format_frame(frame: "DataFrame", fmt: str, limit: int | None) -> str:
    """Rows of ``frame`` (at most ``limit``) as a text table, CSV or JSON lines."""
    limited = frame.limit(limit) if limit else frame
    pdf = limited.toPandas()
    if fmt == "csv":
        return pdf.to_csv(index=False)
    if fmt == "json":
        return pdf.to_json(orient="records", lines=True, date_format="iso") + "\n"
    if pdf.empty:
        return "(no rows)\n"
    return pdf.to_string(index=False, max_colwidth=80) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", help='a Spark SQL statement, e.g. "SELECT count(*) FROM alerts"')
    parser.add_argument("--conf", default="conf/local.yaml", help="configuration (stream.tables_dir)")
    parser.add_argument("--example", metavar="NAME", help="run a documented example query instead")
    parser.add_argument("--list-examples", action="store_true", help="list the example queries and exit")
    parser.add_argument("--examples-file", type=Path, default=DEFAULT_QUERIES, help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many rows (0: all; default 100)")


def run(args: argparse.Namespace) -> int:
    if args.list_examples:
        for example in load_examples(args.examples_file):
            sys.stdout.write(f"{example.name}\n    {example.description}\n")
        return 0
    if bool(args.query) == bool(args.example):
        log.error('give either a SQL statement or --example NAME (see --list-examples)')
        return 2
    statement = args.query
    if args.example:
        examples = {example.name: example for example in load_examples(args.examples_file)}
        if args.example not in examples:
            log.error("no example query %r; known: %s", args.example, ", ".join(examples))
            return 2
        statement = examples[args.example].sql

    from jobs.session import build_spark

    config = load_config(args.conf)
    spark = build_spark(config, "iomt-ad-sql")
    spark.sparkContext.setLogLevel("WARN")
    from pyspark.errors import AnalysisException

    try:
        register_tables(spark, config.stream.tables)
        sys.stdout.write(format_frame(spark.sql(statement), args.format, args.limit or None))
    except AnalysisException as exc:  # a typo in the query: one clear message, no traceback
        log.error("the query failed: %s", str(exc).splitlines()[0])
        return 2
    return 0  # the session ends with the process (run() may share a caller's session)

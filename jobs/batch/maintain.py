"""``iomt-ad maintain``: OPTIMIZE (compact the streaming job's small files) and VACUUM (delete files
no table version within the retention still needs) on every Delta table under ``stream.tables_dir``.

Retention is at least 7 days (168 hours, Delta's own default) so time travel, readers of older
versions and a stream restarted from a checkpoint keep their files. A shorter retention is refused
unless ``--allow-short-retention`` is given; only then is Delta's retention check switched off, for
that VACUUM alone. Both operations are safe while the streaming job appends (Delta's optimistic
concurrency lets compaction and blind appends commit side by side).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.errors import UserError
from jobs.config import ConfigError, load_config

if TYPE_CHECKING:
    from jobs.storage import TablesLocation
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DEFAULT_RETAIN_HOURS = 168
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


class UnsafeRetentionError(UserError, ValueError):
    """A VACUUM retention below the safe minimum was asked for without the explicit opt-in."""


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    files_before: int
    files_after: int
    files_compacted: int      # files OPTIMIZE removed (rewritten into fewer, larger ones)
    files_vacuumed: int       # files VACUUM deleted (-1: not reported by the table history)


def check_retention(retain_hours: float, allow_short: bool) -> None:
    if retain_hours < 0:
        raise UnsafeRetentionError("--retain-hours must be >= 0")
    if retain_hours < DEFAULT_RETAIN_HOURS and not allow_short:
        raise UnsafeRetentionError(
            f"VACUUM retention {retain_hours:g} h is below {DEFAULT_RETAIN_HOURS} h: it could delete files a "
            "running stream or a reader of an older version still needs, and ends time travel before that. "
            "Keep the default, or pass --allow-short-retention if no reader or writer can be affected")


def _quote(path: str) -> str:
    return "delta.`" + str(path).replace("`", "``") + "`"


def _num_files(spark: "SparkSession", path: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL {_quote(path)}").first()["numFiles"])


def _last_vacuum_deleted(spark: "SparkSession", path: str) -> int:
    """Files the last VACUUM deleted, from its ``VACUUM END`` entry in the table history (-1: unknown)."""
    rows = (spark.sql(f"DESCRIBE HISTORY {_quote(path)} LIMIT 5")
            .filter("operation = 'VACUUM END'").orderBy("version", ascending=False).take(1))
    if not rows or not rows[0]["operationMetrics"]:
        return -1
    return int(rows[0]["operationMetrics"].get("numDeletedFiles", -1))


def maintain_table(spark: "SparkSession", path: str, retain_hours: float, optimize: bool = True,
                   vacuum: bool = True, allow_short: bool = False) -> TableMaintenance:
    """OPTIMIZE then VACUUM one table; the retention must already have passed :func:`check_retention`."""
    check_retention(retain_hours, allow_short)
    before = _num_files(spark, path)
    compacted = 0
    if optimize:
        metrics = spark.sql(f"OPTIMIZE {_quote(path)}").first()["metrics"]
        compacted = int(metrics["numFilesRemoved"])
    vacuumed = 0
    if vacuum:
        settings = {}
        if retain_hours < DEFAULT_RETAIN_HOURS:
            log.warning("%s: VACUUM with %g h retention, retention check off for this call (explicit opt-in)",
                        _name(path), retain_hours)
            settings[RETENTION_CHECK] = "false"
        if spark.conf.get(LISTING_PARALLELISM, None) in (None, "10000"):
            # VACUUM lists files with this many tasks (Spark's default 10000): far too many for these tables
            settings[LISTING_PARALLELISM] = str(max(8, 4 * spark.sparkContext.defaultParallelism))
        previous = {key: spark.conf.get(key, None) for key in settings}
        for key, value in settings.items():
            spark.conf.set(key, value)
        try:
            spark.sql(f"VACUUM {_quote(path)} RETAIN {retain_hours:g} HOURS")
            vacuumed = _last_vacuum_deleted(spark, path)
        finally:
            for key, value in previous.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)
    result = TableMaintenance(_name(path), before, _num_files(spark, path), compacted, vacuumed)
    log.info("%s: %d -> %d files (OPTIMIZE removed %d), VACUUM deleted %d", result.table, result.files_before,
             result.files_after, result.files_compacted, result.files_vacuumed)
    return result


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def maintain(spark: "SparkSession", tables_dir: "TablesLocation | Path | str", tables: Iterable[str] | None = None,
             retain_hours: float = DEFAULT_RETAIN_HOURS, optimize: bool = True, vacuum: bool = True,
             allow_short: bool = False) -> list[TableMaintenance]:
    """Maintain the named tables (default: every Delta table under ``tables_dir``)."""
    from jobs.batch.sql import delta_tables

    check_retention(retain_hours, allow_short)
    found = delta_tables(tables_dir)
    names = list(tables) if tables else list(found)
    missing = [name for name in names if name not in found]
    if missing or not names:
        raise ConfigError(f"no Delta table {missing or ''} under {getattr(tables_dir, 'root', tables_dir)}; found: {', '.join(found) or 'none'}")
    return [maintain_table(spark, found[name], retain_hours, optimize, vacuum, allow_short) for name in names]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default="conf/local.yaml", help="configuration (stream.tables_dir)")
    parser.add_argument("--tables", nargs="+", metavar="NAME", help="only these tables (default: all)")
    parser.add_argument("--retain-hours", type=float, default=DEFAULT_RETAIN_HOURS,
                        help=f"VACUUM retention in hours (default and minimum {DEFAULT_RETAIN_HOURS})")
    parser.add_argument("--allow-short-retention", action="store_true",
                        help="accept a retention below the minimum (turns Delta's check off for the VACUUM)")
    parser.add_argument("--no-optimize", action="store_true", help="skip OPTIMIZE")
    parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM")


def run(args: argparse.Namespace) -> int:
    check_retention(args.retain_hours, args.allow_short_retention)
    from jobs.session import build_spark

    config = load_config(args.conf)
    spark = build_spark(config, "iomt-ad-maintain")
    results = maintain(spark, config.stream.tables, args.tables, args.retain_hours,
                       optimize=not args.no_optimize, vacuum=not args.no_vacuum,
                       allow_short=args.allow_short_retention)
    for item in results:
        sys.stdout.write(f"{item.table:16} files {item.files_before:>6} -> {item.files_after:<6} "
                         f"compacted {item.files_compacted:>6}  vacuumed {item.files_vacuumed:>6}\n")
    return 0

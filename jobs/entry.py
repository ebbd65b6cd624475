"""How every command runs: logging, the arguments, and errors a user can fix reported as one clear
line with exit status 2 (anything else is a bug and keeps its traceback). ``iomt-ad`` (``jobs.cli``)
and the spark-submit entry points (``jobs/stream/score_stream.py``, ``jobs/batch/rescore.py``) both
go through :func:`run_command`, so a job behaves the same however it is started."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

log = logging.getLogger("iomt-ad")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says what to do: every :class:`jobs.errors.UserError`, and those of the
    layers below ``jobs`` (which cannot derive from it)."""
    from jobs.errors import UserError
    from models.bundle import BundleError
    from schemas.classes import UnknownClassFileError
    from schemas.csv_layout import CsvLayoutError

    return (UserError, BundleError, CsvLayoutError, UnknownClassFileError)


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                errors: tuple[type[BaseException], ...] = ()) -> int:
    """``run(args)``; a user error (``user_errors()`` and ``errors``) is logged as one line: exit 2."""
    try:
        return int(run(args))
    except (*user_errors(), *errors) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


def entry_point(prog: str, description: str | None, add_arguments: Callable[[argparse.ArgumentParser], object],
                run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None = None) -> int:
    """A spark-submit entry point's ``main``: the subcommand's own arguments, INFO logging."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return run_command(run, args)

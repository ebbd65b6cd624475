"""``python -m jobs.dashboard`` = ``iomt-ad dashboard``."""
import sys

from jobs.cli import main

sys.exit(main(["dashboard", *sys.argv[1:]]))

"""``python -m jobs.dashboard`` = ``iomt-ad dashboard``."""
import sys

from jobs.dashboard import main

sys.exit(main())

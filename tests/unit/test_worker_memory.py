"""A task's freed memory goes back to the system (udfs.worker_memory): pyarrow's pool keeps the
segments of many small buffers after they are freed, until it is told to release them."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import json
import numpy as np, psutil, pyarrow as pa
from udfs.worker_memory import release_memory
rss = lambda: psutil.Process().memory_info().rss / 2**20
start = rss()
arrays = [pa.array(np.arange(4000, dtype=np.float64)) for _ in range(5000)]  # ~150 MB of small buffers
held = rss()
del arrays
freed = rss()
release_memory()
print(json.dumps({"start": start, "held": held, "freed": freed, "released": rss()}))
"""


def test_release_memory_hands_freed_buffers_back() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    taken = rss["held"] - rss["start"]
    assert taken > 100
    assert rss["freed"] - rss["start"] > taken / 2  # freeing alone leaves most of it with the process
    assert rss["freed"] - rss["released"] > taken / 2  # released: most of it is the system's again

"""The driver gives a micro-batch's memory back (jobs.stream.sink.use_releasing_allocators and
release_freed_memory). Run in a fresh interpreter so the RSS belongs to this workload only.

Measured when this test was written: with the sink's allocators the workload went 110 -> 213 MB
(peak) -> 123 MB; with pyarrow's default allocator (mimalloc) 114 -> 302 -> 273 MB, which fails the
last assertion."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

WORKLOAD = """
import json
import numpy as np, pyarrow as pa
from jobs.stream.sink import release_freed_memory, use_releasing_allocators

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

use_releasing_allocators()
pa.table({"x": [1.0]}).to_pandas()  # imports pandas before the baseline
base, peak = rss_mb(), 0.0
rng = np.random.default_rng(0)
for batch in range(5):  # five batches shaped like the sink's: Arrow -> pandas parts -> Arrow
    n = 80_000
    table = pa.table({**{f"f{j}": pa.array(rng.random(n)) for j in range(40)},
                      "record_id": pa.array([f"record-{batch}-{k}" for k in range(n)]),
                      "label": pa.array(rng.choice(["Benign", "DDoS-UDP"], n))})
    frames = [table.slice(start, 5000).to_pandas() for start in range(0, n, 5000)]
    combined = pa.concat_tables([pa.Table.from_pandas(frame) for frame in frames]).combine_chunks()
    peak = max(peak, rss_mb())
    del table, frames, combined
    release_freed_memory()
print(json.dumps({"base": base, "peak": peak, "after": rss_mb(), "pool": pa.default_memory_pool().backend_name}))
"""


def test_driver_returns_a_batch_worth_of_memory() -> None:
    result = subprocess.run([sys.executable, "-c", WORKLOAD], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["pool"] == "system"
    grown = figures["peak"] - figures["base"]
    assert grown > 50, figures  # the workload really allocated
    assert figures["after"] - figures["base"] < 0.3 * grown, figures

"""The soak reads the JVM's live heap from its GC log (the heap after each young or full pause)."""
from jobs.bench.soak import jvm_live_heap

LOG = """[0.012s][info][gc] Using G1
[21.641s][info][gc] GC(37) Pause Young (Normal) (G1 Evacuation Pause) 109M->79M(147M) 19.690ms
[22.099s][info][gc] GC(38) Pause Young (Concurrent Start) (G1 Evacuation Pause) 117M->79M(321M) 11.136ms
[22.273s][info][gc] GC(39) Pause Remark 94M->93M(320M) 15.665ms
[22.313s][info][gc] GC(39) Pause Cleanup 95M->95M(320M) 0.144ms
[30.500s][info][gc] GC(40) Pause Full (System.gc()) 2G->512M(1024M) 80.100ms
[31.000s][info][gc] GC(41) Pause Young (Normal) (G1 Evacuation Pause) 600M->81920K(1024M) 9.000ms
"""


def test_live_heap_after_young_and_full_pauses_from_a_start(tmp_path) -> None:
    log = tmp_path / "gc.log"
    log.write_text(LOG)
    times, after = jvm_live_heap(log, since_s=22.0)
    assert times == [22.099 - 22.0, 30.5 - 22.0, 31.0 - 22.0]
    assert after == [79.0, 512.0, 80.0]
    assert jvm_live_heap(tmp_path / "missing.log", 0.0) == ([], [])

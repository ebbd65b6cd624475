"""Splitting a JVM's thread CPU by role (jobs.bench.jvm_threads), on a thread dump written by hand in
the JDK 17 ``jcmd Thread.print`` format."""
from jobs.bench.jvm_threads import DRIVER, EXECUTOR, JVM_RUNTIME, parse_thread_dump, thread_role, used_between

DUMP = '''2026-12-02 03:50:01
Full thread dump OpenJDK 64-Bit Server VM (17.0.15+6-Debian-1deb12u1 mixed mode, sharing):

"stream execution thread for iomt_ad_score_stream [id = 1, runId = 2]" #80 daemon prio=5 os_prio=0 cpu=1500.50ms elapsed=60.00s tid=0x1 nid=0x2 waiting on condition  [0x3]
   java.lang.Thread.State: TIMED_WAITING (parking)

"Executor task launch worker for task 1.0 in stage 3.0 (TID 7)" #85 daemon prio=5 os_prio=0 cpu=9000.00ms elapsed=30.00s tid=0x4 nid=0x5 runnable  [0x6]

"dag-scheduler-event-loop" #39 daemon prio=5 os_prio=0 cpu=250.00ms elapsed=61.00s tid=0x7 nid=0x8 waiting on condition  [0x9]

"C2 CompilerThread0" #6 daemon prio=9 os_prio=0 cpu=4000.00ms elapsed=62.00s tid=0xa nid=0xb waiting on condition  [0x0]

"GC Thread#0" os_prio=0 cpu=300.25ms elapsed=62.00s tid=0xc nid=0xd runnable
'''


def test_threads_are_split_by_role():
    assert thread_role("Executor task launch worker for task 0.0 in stage 1.0 (TID 1)") == EXECUTOR
    assert thread_role("G1 Conc#0") == JVM_RUNTIME
    assert thread_role("stream execution thread for q") == DRIVER
    totals = parse_thread_dump(DUMP)
    assert totals == {DRIVER: 1.7505, EXECUTOR: 9.0, JVM_RUNTIME: 4.30025}


def test_used_between_readings():
    assert used_between(None, {DRIVER: 1.0}) is None
    assert used_between({DRIVER: 1.0, EXECUTOR: 5.0}, {DRIVER: 1.5, EXECUTOR: 2.0}) == {DRIVER: 0.5, EXECUTOR: 0.0}

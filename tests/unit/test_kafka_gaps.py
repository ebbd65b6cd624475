"""The Kafka gap check on its own: a batch whose first offset of a partition is past where the last
batch ended has a gap of exactly the records in between; contiguous batches have none."""
import pyarrow as pa

from jobs.stream.kafka_gaps import Gap, OffsetTracker, merge_offsets, task_offsets


def _task(topic: str, partition: int, offsets: list[int]) -> pa.Table:
    return pa.table({"origin": [topic] * len(offsets), "partition": pa.array([partition] * len(offsets), pa.int32()),
                     "offset": pa.array(offsets, pa.int64())})


def test_contiguous_batches_have_no_gap_and_a_jump_is_counted() -> None:
    first = merge_offsets(task_offsets(_task("t", 0, [0, 1, 2])) + task_offsets(_task("t", 1, [0, 1])))
    gaps, tracker = OffsetTracker().after(first)
    assert gaps == [] and tracker.expected == {("t", 0): 3, ("t", 1): 2}
    tracker = OffsetTracker.from_json(tracker.to_json())  # as batch_log keeps it across a restart
    # partition 0 goes on at 3; partition 1 jumps from 2 to 9: offsets 2-8 (7 records) expired unread
    second = merge_offsets(task_offsets(_task("t", 0, [3, 4])) + task_offsets(_task("t", 1, [9, 10])))
    gaps, tracker = tracker.after(second)
    assert gaps == [Gap("t", 1, 2, 8, 7)]
    assert tracker.expected == {("t", 0): 5, ("t", 1): 11}


def test_tasks_of_one_partition_merge_and_file_records_have_no_offsets() -> None:
    merged = merge_offsets(task_offsets(_task("t", 0, [5, 6])) + task_offsets(_task("t", 0, [7, 8, 9])))
    assert merged == {("t", 0): (5, 9, 5)}
    files = pa.table({"origin": ["a.jsonl"], "partition": pa.array([None], pa.int32()),
                      "offset": pa.array([None], pa.int64())})
    assert task_offsets(files) == []
    assert OffsetTracker().to_json() is None

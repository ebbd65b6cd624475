import json
import pandas as pd

from jobs.ops.replay import ReplayOptions, iter_messages, replay
from jobs.publish import DirectorySink
from models.training.datasets import load_flows_pandas
from schemas.flow_record import FEATURES


def _flows(sample_dir) -> pd.DataFrame:
    return load_flows_pandas([sample_dir / "Recon-OS_Scan_test.pcap.csv"])


def test_messages_carry_schema_names_label_and_unique_ids(sample_dir) -> None:
    flows = _flows(sample_dir)
    messages = list(iter_messages(flows, ReplayOptions(rate=0, limit=50)))
    assert len(messages) == 50
    key, first = messages[0]
    assert key == "Recon-OS_Scan_test.pcap.csv:1"
    assert first["source_id"] == key and first["label"] == "Recon-OS_Scan"
    assert set(first) == {"record_id", "source_id", "event_time", "label", *FEATURES}
    assert len({m["record_id"] for _, m in messages}) == 50
    assert first["Header_Length"] == flows.loc[0, "Header_Length"]


def test_inf_and_missing_cells_survive_json(tmp_path) -> None:
    values = ["1"] * len(FEATURES)
    values[FEATURES.index("Rate")] = "inf"
    values[FEATURES.index("Std")] = ""
    (tmp_path / "Benign_test.pcap.csv").write_text(",".join(FEATURES) + "\n" + ",".join(values) + "\n")
    (_, message), = iter_messages(load_flows_pandas([tmp_path]), ReplayOptions(rate=0))
    text = json.dumps(message)
    assert '"Rate": Infinity' in text  # Spark's JSON reader accepts it (allowNonNumericNumbers)
    assert '"Std": null' in text       # a missing measurement, imputed downstream


def test_loop_and_shuffle(sample_dir) -> None:
    flows = _flows(sample_dir).head(10)
    looped = [k for k, _ in iter_messages(flows, ReplayOptions(rate=0, loop=True, limit=25))]
    assert len(looped) == 25 and looped[10] == looped[0]
    shuffled = [k for k, _ in iter_messages(flows, ReplayOptions(rate=0, shuffle=True, seed=3))]
    assert sorted(shuffled) == sorted(looped[:10]) and shuffled != looped[:10]


def test_directory_sink_writes_complete_files_only(sample_dir, tmp_path) -> None:
    flows = _flows(sample_dir).head(30)
    sent = replay(flows, DirectorySink(tmp_path, records_per_file=7), ReplayOptions(rate=0), progress=False)
    assert sent == 30
    files = sorted(tmp_path.iterdir())
    assert not [f for f in files if f.name.startswith(".")]
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 30 and len(files) == 5

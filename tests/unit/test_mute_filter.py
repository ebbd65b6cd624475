"""The notifier's mute filter reads the analysts' mutes from Delta: a muted device's incident
updates are suppressed with the mute's reason, other devices' are sent."""
from datetime import datetime, timedelta, timezone

from jobs.incidents.actions_store import IncidentBook
from jobs.incidents.lifecycle import MUTE
from jobs.outputs.mutes import MuteFilter
from jobs.storage import TablesLocation


def _update(subject: str) -> dict:
    return {"subject": subject, "category": "DDoS", "device_id": subject, "device_mac": None, "device_ip": None,
            "source_id": subject, "predicted_classes": ["DDoS-UDP"], "incident_id": f"i-{subject}"}


def test_a_muted_device_is_suppressed_with_the_reason_and_others_pass(tmp_path) -> None:
    tables = TablesLocation.of(tmp_path / "delta")
    mute_filter = MuteFilter(tables, reread_s=0.0)
    assert mute_filter(_update("pump-7")) is None  # no mutes table yet
    book = IncidentBook(tables)
    now = datetime.now(timezone.utc)
    book.mute(MUTE, "device", "pump-7", now - timedelta(minutes=1), now + timedelta(hours=2), "firmware update",
              "alice", now)
    reason = mute_filter(_update("pump-7"))
    assert reason is not None and "firmware update" in reason and "alice" in reason
    assert mute_filter(_update("monitor-2")) is None

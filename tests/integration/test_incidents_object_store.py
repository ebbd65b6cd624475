"""``iomt-ad incidents`` with the tables on a real S3-compatible object store (SeaweedFS on
loopback), reached through ``--conf``'s ``stream.storage`` as every other reader: incidents written
by the stream's writers there, an action and a mute appended there by the command."""
from __future__ import annotations

import json
import uuid

import pytest

from jobs.cli import main
from jobs.incidents.actions_store import IncidentBook
from jobs.storage import StorageConfig, TablesLocation
from schemas.tables import INCIDENT_ACTIONS, MUTES
from tests.helpers.incidents import write_incidents

pytestmark = [pytest.mark.objectstore]


def test_incidents_command_on_an_object_store(object_store, tmp_path, capsys) -> None:
    uri = object_store.uri(f"incidents-{uuid.uuid4().hex[:8]}/tables")
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"stream:\n  tables_dir: {uri}\n  storage:\n    endpoint: {object_store.endpoint}\n"
                    "    allow_http: true\n")
    tables = write_incidents(TablesLocation.of(uri, StorageConfig(endpoint=object_store.endpoint, allow_http=True)))
    assert main(["incidents", "list", "--conf", str(conf), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["subject"], r["max_severity"]) for r in rows] == [("mac:a", "critical"), ("mac:b", "low")]
    assert main(["incidents", "ack", rows[0]["incident_id"], "--conf", str(conf), "--who", "alice"]) == 0
    assert main(["incidents", "mute", "--class", "Recon-Port_Scan", "--for", "1d", "--reason", "scanner test",
                 "--conf", str(conf), "--who", "alice"]) == 0
    actions = tables.delta_table(INCIDENT_ACTIONS).to_pyarrow_table().to_pylist()
    assert [(a["incident_id"], a["action"], a["who"]) for a in actions] == [(rows[0]["incident_id"], "ack", "alice")]
    assert [(m.scope, m.value) for m in IncidentBook(tables).mutes()] == [("class", "Recon-Port_Scan")]
    assert tables.delta_table(MUTES).version() == 0

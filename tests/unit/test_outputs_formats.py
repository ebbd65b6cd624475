"""The alert outputs' messages: CEF escaping, RFC 5424 with RFC 6587 framing, OCSF Detection
Findings validated against the OCSF models of py-ocsf-models (OCSF 1.5.0), the Slack message."""
import json
from datetime import datetime, timezone

import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.outputs.cef import escape_header, escape_value, format_cef
from jobs.outputs.ocsf import detection_finding
from jobs.outputs.outbox import change_of, outbox_rows
from jobs.outputs.slack import slack_message
from jobs.outputs.syslog import octet_counted, rfc5424
from tests.helpers.incident_updates import HOSTILE_EXPLANATION, incident, parse_cef


def _update(**extra):
    return outbox_rows([incident(3, batch_id=7, **extra)], datetime(2026, 3, 1, tzinfo=timezone.utc)).to_pylist()[0]


def test_cef_escapes_as_the_specification_says() -> None:
    assert escape_header("a|b\\c") == "a\\|b\\\\c"
    assert escape_value("a=b\\c\nd\re") == "a\\=b\\\\c\\nd\\re"
    assert escape_value("pipes | stay") == "pipes | stay"  # no escaping of | in the extension


def test_cef_message_parses_back_with_the_update_id() -> None:
    update = _update()
    header, pairs = parse_cef(format_cef(update, "1.2|3"))
    assert header == ["CEF:0", "IoMT-AD", "iomt-ad", "1.2|3", "incident:DDoS",
                      "IoMT incident opened: DDoS on mac:02:00:00:00:00:03 (high, 30 alerts)", "8"]
    assert pairs["externalId"] == f"{3:032x}:7"
    assert pairs["msg"] == HOSTILE_EXPLANATION
    assert pairs["cs5"] == "Example Medical | Inc"
    assert pairs["src"] == "10.0.0.3" and pairs["cnt"] == "30" and pairs["act"] == "opened"
    assert pairs["start"] == str(int(datetime(2026, 3, 1, 12, tzinfo=timezone.utc).timestamp() * 1000))
    assert "\n" not in format_cef(update, "1")


def test_change_follows_the_incident() -> None:
    assert change_of(incident(1, batch_id=4)) == "opened"
    assert change_of(incident(1, batch_id=5, opened_batch=4)) == "updated"
    assert change_of(incident(1, batch_id=5, opened_batch=4, state="closed")) == "closed"


def test_rfc5424_message_and_octet_counting() -> None:
    message = rfc5424("CEF:0|é", facility=16, severity=3, hostname="host one", app_name="iomt-ad", msgid="incident",
                      structured={"updateId": 'a"b]c'}, at=datetime(2026, 3, 1, 12, 0, 1, 250000, tzinfo=timezone.utc))
    assert message == ('<131>1 2026-03-01T12:00:01.250Z hostone iomt-ad - incident [iomt@32473 updateId="a\\"b\\]c"] '
                       'CEF:0|é').encode()
    assert octet_counted(b"ab\xc3\xa9") == b"4 ab\xc3\xa9"  # length in octets, not characters


def test_ocsf_detection_finding_validates_against_the_ocsf_models() -> None:
    from py_ocsf_models.events.findings.detection_finding import DetectionFinding

    for update in (_update(), _update(state="closed", opened_batch=2), _update(device_ip=None, device_mac=None)):
        finding = json.loads(json.dumps(detection_finding(update, "0.1.0")))
        model = DetectionFinding.model_validate(finding)
        # every attribute we send is one the schema knows (the models ignore unknown ones)
        assert json.loads(model.model_dump_json(exclude_none=True)) == _known_only(finding, model)
        assert (finding["class_uid"], finding["category_uid"]) == (2004, 2)
        assert finding["type_uid"] == 200400 + finding["activity_id"]
        assert finding["metadata"]["uid"] == update["update_id"]
        assert finding["finding_info"]["uid"] == update["incident_id"]
    assert detection_finding(_update(state="closed", opened_batch=2), "0.1.0")["activity_name"] == "Close"


def _known_only(finding: dict, model) -> dict:
    """``finding`` as the model sees it: any attribute the model dropped would make the comparison fail."""
    dumped = json.loads(model.model_dump_json(exclude_none=True))
    missing = _missing(finding, dumped)
    assert not missing, f"attributes the OCSF Detection Finding does not have: {missing}"
    return dumped


def _missing(sent, kept, path="") -> list[str]:
    if isinstance(sent, dict):
        return [p for k, v in sent.items() for p in ([f"{path}.{k}"] if k not in kept else
                                                     ([] if k == "unmapped" else _missing(v, kept[k], f"{path}.{k}")))]
    if isinstance(sent, list):
        return [p for a, b in zip(sent, kept) for p in _missing(a, b, path)]
    return []


def test_slack_message_has_text_blocks_and_the_update_id() -> None:
    message = slack_message(_update(explanation="<script> & more"))
    assert message["text"].startswith("IoMT incident opened: DDoS")
    assert [block["type"] for block in message["blocks"]] == ["section", "section", "section", "context"]
    assert message["blocks"][2]["text"]["text"] == "&lt;script&gt; &amp; more"
    assert f"{3:032x}:7" in message["blocks"][-1]["elements"][0]["text"]


def test_outputs_config_is_off_by_default_and_checked() -> None:
    assert config_from_mapping({}).alerts.outputs.enabled() == ()
    with pytest.raises(ConfigError, match="url"):
        config_from_mapping({"alerts": {"outputs": {"slack_webhook": {"enabled": True}}}})
    with pytest.raises(ConfigError, match="facility"):
        config_from_mapping({"alerts": {"outputs": {"syslog": {"facility": "local9"}}}})
    with pytest.raises(ConfigError, match="retry_max"):
        config_from_mapping({"alerts": {"notify": {"retry_max": "0s"}}})
    with pytest.raises(ConfigError, match="keep_delivered"):
        config_from_mapping({"alerts": {"notify": {"keep_delivered": "-1 day"}}})
    assert config_from_mapping({"alerts": {"notify": {"keep_delivered": "0 seconds"}}}).alerts.notify.keep_delivered == "0 seconds"

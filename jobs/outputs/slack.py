"""A Slack-compatible webhook message for an incident update (``{"text": ..., "blocks": [...]}``;
Mattermost, Rocket.Chat and Teams' Slack-compatible hooks take it too). Chat tools do not drop
duplicates: the update id is in the message's context line, so a person can tell a repeat."""
from __future__ import annotations

from typing import Any

from jobs.outputs.cef import title

_EMOJI = {"critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_circle:",
          "low": ":large_yellow_circle:"}


def _mrkdwn(text: object) -> str:
    """Slack's three control characters escaped (as its formatting guide asks)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(update: dict[str, Any]) -> dict[str, Any]:
    headline = title(update)
    fields = [("Device", update.get("device_id") or update.get("subject")), ("Address", update.get("device_ip")),
              ("Severity", update.get("max_severity")), ("Alerts", update.get("alerts")),
              ("First seen", update.get("first_seen")), ("Last seen", update.get("last_seen")),
              ("Classes", ", ".join(update.get("predicted_classes") or [])), ("State", update.get("state"))]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"{_EMOJI.get(update.get('max_severity') or '', '')} *{_mrkdwn(headline)}*"
                                     .strip()}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{_mrkdwn(value)}"}
                                       for name, value in fields if value not in (None, "")]},
    ]
    if update.get("explanation"):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(update["explanation"])[:2900]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(
        f"update {update['update_id']} · model {update.get('model_version')}")}]})
    return {"text": headline, "blocks": blocks}

"""HTTP(S) webhook outputs: one POST of JSON per update, an OCSF Detection Finding
(:mod:`jobs.outputs.ocsf`) or a Slack-compatible message (:mod:`jobs.outputs.slack`). The update id
goes in the ``Idempotency-Key`` header (and in the body), so a receiver can drop a duplicate. Any 2xx
answer is a delivery; anything else, or no answer within ``timeout_seconds``, is retried later."""
from __future__ import annotations

import json
import logging
from typing import Any

from jobs.outputs.base import OutputError
from jobs.outputs.config import WebhookOutputConfig

log = logging.getLogger(__name__)


class WebhookOutput:
    def __init__(self, name: str, config: WebhookOutputConfig, payload: str, version: str) -> None:
        import requests

        from jobs.config import ConfigError, read_secret

        self.name = name
        self.config = config
        self.payload = payload  # "ocsf" or "slack"
        self.version = version
        self.url = config.url or read_secret(config.url_env, config.url_file, f"alerts.outputs.{name}.url")
        if not self.url:
            raise ConfigError(f"alerts.outputs.{name}: no URL (url, or the variable {config.url_env} / the file "
                              f"{config.url_file} is empty or unset)")
        token = read_secret(config.token_env, config.token_file, f"alerts.outputs.{name}.token")
        if (config.token_env or config.token_file) and not token:
            raise ConfigError(f"alerts.outputs.{name}: the token's variable {config.token_env} is unset")
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def body(self, update: dict[str, Any]) -> dict[str, Any]:
        if self.payload == "slack":
            from jobs.outputs.slack import slack_message

            return slack_message(update)
        from jobs.outputs.ocsf import detection_finding

        return detection_finding(update, self.version)

    def send(self, update: dict[str, Any]) -> None:
        import requests

        data = json.dumps(self.body(update), default=str).encode("utf-8")
        try:
            response = self._session.post(self.url, data=data, timeout=self.config.timeout_seconds,
                                          headers={"Idempotency-Key": update["update_id"]},
                                          verify=self.config.ca_file or True)
        except requests.RequestException as exc:
            raise OutputError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise OutputError(f"{self.name}: HTTP {response.status_code} {response.text[:200]!r}")

    def close(self) -> None:
        self._session.close()

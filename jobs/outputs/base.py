"""What every output is: ``name``, ``send(update)`` (raises :class:`OutputError` when the receiver
did not take it, so the notifier retries) and ``close()``; and how the configured ones are built."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jobs.config import AppConfig


class OutputError(Exception):
    """A delivery that did not happen (receiver down, refused, too slow); retried later."""


class Output(Protocol):
    name: str

    def send(self, update: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def product_version() -> str:
    """This product's version (CEF's device version, OCSF's product version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iomt-ad")
    except PackageNotFoundError:
        return "unknown"


def build_outputs(config: "AppConfig") -> list[Output]:
    """The outputs ``alerts.outputs`` enables (secrets read now: a missing one is a ConfigError)."""
    outputs_config = config.alerts.outputs
    version = product_version()
    outputs: list[Output] = []
    if outputs_config.syslog.enabled:
        from jobs.outputs.syslog import SyslogOutput

        outputs.append(SyslogOutput(outputs_config.syslog, version))
    if outputs_config.kafka.enabled:
        from jobs.outputs.kafka_output import KafkaOutput

        outputs.append(KafkaOutput(outputs_config.kafka, config.stream.kafka, version))
    if outputs_config.ocsf_webhook.enabled:
        from jobs.outputs.webhook import WebhookOutput

        outputs.append(WebhookOutput("ocsf_webhook", outputs_config.ocsf_webhook, "ocsf", version))
    if outputs_config.slack_webhook.enabled:
        from jobs.outputs.webhook import WebhookOutput

        outputs.append(WebhookOutput("slack_webhook", outputs_config.slack_webhook, "slack", version))
    if outputs_config.file.enabled:
        from jobs.outputs.file_output import FileOutput

        outputs.append(FileOutput(outputs_config.file, version))
    return outputs

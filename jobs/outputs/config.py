"""``alerts`` in ``conf/*.yaml``: the incident outputs and how the notifier delivers to them. Every
output is off by default; secrets (a webhook's token, a Slack URL, which carries its own) come only
from an environment variable or a file, read when the output is built. Built by
:func:`jobs.config.config_from_mapping` (as :class:`jobs.storage.StorageConfig` is, the dataclasses
live beside the code that uses them)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
              **{f"local{n}": 16 + n for n in range(8)}}


@dataclass(frozen=True)
class SyslogOutputConfig:
    """RFC 5424 over TCP (octet counting, RFC 6587), CEF in the message; TLS (RFC 5425) unless ``tls: false``."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 6514
    tls: bool = True
    ca_file: str | None = None    # PEM file of the CA(s) that signed the receiver's certificate (default: the system's)
    cert_file: str | None = None  # PEM client certificate (mutual TLS), with key_file
    key_file: str | None = None
    facility: str = "local0"
    app_name: str = "iomt-ad"
    hostname: str | None = None   # default: this machine's name
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class KafkaOutputConfig:
    """OCSF Detection Findings as JSON to a topic, keyed by incident id, header ``update_id``."""

    enabled: bool = False
    bootstrap_servers: str = "localhost:9092"
    topic: str = "iomt_incidents"
    security_from_stream: bool = False  # use stream.kafka's TLS and SASL keys (the same cluster, secured)
    timeout_seconds: float = 30.0
    options: Mapping[str, str] = field(default_factory=dict)  # more librdkafka settings (no secrets)


@dataclass(frozen=True)
class WebhookOutputConfig:
    """An HTTP(S) POST of JSON per update (OCSF, or a Slack-compatible message)."""

    enabled: bool = False
    url: str | None = None        # or, when the URL itself is a secret (Slack's), url_env / url_file
    url_env: str | None = None
    url_file: str | None = None
    token_env: str | None = None  # a bearer token sent as "Authorization: Bearer <token>"
    token_file: str | None = None
    ca_file: str | None = None    # PEM file of the CA(s) that signed an https receiver's certificate
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class FileOutputConfig:
    """OCSF Detection Findings as JSON lines appended to a file, for a log shipper to tail."""

    enabled: bool = False
    path: str = "var/incidents.ocsf.jsonl"


@dataclass(frozen=True)
class OutputsConfig:
    syslog: SyslogOutputConfig = field(default_factory=SyslogOutputConfig)
    kafka: KafkaOutputConfig = field(default_factory=KafkaOutputConfig)
    ocsf_webhook: WebhookOutputConfig = field(default_factory=WebhookOutputConfig)
    slack_webhook: WebhookOutputConfig = field(default_factory=WebhookOutputConfig)
    file: FileOutputConfig = field(default_factory=FileOutputConfig)

    def enabled(self) -> tuple[str, ...]:
        return tuple(name for name in ("syslog", "kafka", "ocsf_webhook", "slack_webhook", "file")
                     if getattr(self, name).enabled)


@dataclass(frozen=True)
class NotifyConfig:
    """How the notifier runs: in the streaming job's driver (a background thread) or alone
    (``iomt-ad notify``); how often it looks for new updates; how it backs off from a failing output."""

    in_stream: bool = True
    update_every: str = "15 minutes"  # an open incident's news at most this often (alert time) unless more severe
    poll_interval: str = "2 seconds"
    retry_initial: str = "1 second"
    retry_max: str = "5 minutes"
    keep_delivered: str = "7 days"  # delivered updates stay in outbox/deliveries this long, then are pruned


@dataclass(frozen=True)
class AlertsConfig:
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)


def alerts_from_mapping(raw: Mapping[str, Any] | None, build: Callable[..., Any],
                        duration: Callable[[str, str], timedelta], error: type[Exception]) -> AlertsConfig:
    """``alerts`` built with :func:`jobs.config._build` (``build``), checked now rather than at the first delivery."""
    raw = dict(raw or {})
    if not isinstance(raw, Mapping):
        raise error("alerts must be a mapping")
    outputs_raw = raw.pop("outputs", None)
    alerts = build(AlertsConfig, raw, "alerts", {"notify": NotifyConfig})
    outputs = build(OutputsConfig, outputs_raw, "alerts.outputs", {
        "syslog": SyslogOutputConfig, "kafka": KafkaOutputConfig, "ocsf_webhook": WebhookOutputConfig,
        "slack_webhook": WebhookOutputConfig, "file": FileOutputConfig})
    for key in ("poll_interval", "retry_initial", "retry_max"):
        if duration(getattr(alerts.notify, key), f"alerts.notify.{key}") <= timedelta(0):
            raise error(f"alerts.notify.{key} must be more than zero")
    if duration(alerts.notify.keep_delivered, "alerts.notify.keep_delivered") < timedelta(0):
        raise error("alerts.notify.keep_delivered must not be negative (0: prune as soon as every output has them)")
    if duration(alerts.notify.update_every, "alerts.notify.update_every") < timedelta(0):
        raise error("alerts.notify.update_every must not be negative (0: every change)")
    if outputs.syslog.facility not in FACILITIES:
        raise error(f"alerts.outputs.syslog.facility must be one of {sorted(FACILITIES)}")
    if bool(outputs.syslog.cert_file) != bool(outputs.syslog.key_file):
        raise error("alerts.outputs.syslog.cert_file and key_file go together (mutual TLS)")
    if (outputs.syslog.ca_file or outputs.syslog.cert_file) and not outputs.syslog.tls:
        raise error("alerts.outputs.syslog: ca_file / cert_file are set but tls is false")
    if outputs.file.enabled and not str(outputs.file.path).strip():
        raise error("alerts.outputs.file: set path")
    for name in ("ocsf_webhook", "slack_webhook"):
        hook = getattr(outputs, name)
        if hook.enabled and not (hook.url or hook.url_env or hook.url_file):
            raise error(f"alerts.outputs.{name}: set url (or url_env / url_file when the URL is a secret)")
    return replace(alerts, outputs=outputs)

"""Grafana alerting provisioning for IoMT-AD, built with grafana-foundation-sdk's alerting builders.

Four rules: the anomaly rate (share of flagged records, over a window as long as ``for``) stays above
a threshold for ``for`` minutes; no record reached InfluxDB for 10 minutes (no data alerts: a
stopped job, broker, sensor or InfluxDB is never taken for a quiet network); Kafka records expired
before the job read them (``kafka_gaps`` points); an hour's traffic drifted from the model's
reference (``model_drift`` points the job marked drifted). Notifications go to a Slack-compatible incoming-webhook contact
point whose URL Grafana reads from the environment (``$IOMT_AD_ALERT_WEBHOOK_URL``) when it loads the
provisioning file, so no secret is committed. The SDK models the alerting HTTP API; this module
places its rule, contact point and policy into Grafana's file-provisioning layout.
"""
from __future__ import annotations

import json
import re
from typing import Any, Final

from jobs.grafana import flux
from jobs.grafana.sdk import DATASOURCE_UID, flux_query

ALERTING_FILE: Final[str] = "provisioning/alerting/iomt-ad.yaml"
DEFAULT_RATE_PERCENT: Final[float] = 20.0
DEFAULT_FOR: Final[str] = "5m"
FOLDER: Final[str] = "IoMT-AD"
GROUP: Final[str] = "iomt-ad-anomalies"
RULE_UID: Final[str] = "iomt-ad-anomaly-rate"
CONTACT_POINT: Final[str] = "iomt-ad-webhook"
WEBHOOK_ENV: Final[str] = "IOMT_AD_ALERT_WEBHOOK_URL"
BUCKET_ENV: Final[str] = "INFLUXDB_BUCKET"  # as in provisioning/datasources/influxdb.yaml
EXPR_DATASOURCE: Final[str] = "__expr__"
SILENT_RULE_UID: Final[str] = "iomt-ad-stream-silent"
SILENT_WINDOW: Final[str] = "10m"
GAP_RULE_UID: Final[str] = "iomt-ad-kafka-gaps"
GAP_WINDOW: Final[str] = "1h"
DRIFT_RULE_UID: Final[str] = "iomt-ad-drift"
DRIFT_WINDOW: Final[str] = "2h"  # the hour now filling and the one before (points sit at the hour's start)


def duration_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", text.strip())
    if not match:
        raise ValueError(f"alert duration {text!r}: write it as <number>s, <number>m or <number>h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def _rule(title: str, uid: str, query: str, window_s: int, evaluator: str, value: float, for_duration: str,
          no_data: str, summary: str, description: str, severity: str = "critical", exec_err: str = "Error") -> Any:
    """A rule over one Flux query: its last value (``A`` reduced to ``B``) compared with ``value``
    (``C``); ``no_data``: the state when the query returns nothing."""
    from grafana_foundation_sdk.builders import alerting, expr
    from grafana_foundation_sdk.models.alerting import RelativeTimeRange

    # alert rules have no dashboard variables: the bucket comes from Grafana's environment
    query = query.replace(f"${{{flux.BUCKET_VARIABLE}}}", f"${BUCKET_ENV}")
    reduce = expr.TypeReduce().ref_id("B").expression("A").reducer("last").settings(
        expr.ExprTypeReduceSettings().mode("dropNN"))
    threshold = expr.TypeThreshold().ref_id("C").expression("B").conditions([
        expr.ExprTypeThresholdConditions().evaluator(
            expr.ExprTypeThresholdConditionsEvaluator().type(evaluator).params([value]))])
    return (alerting.Rule(title)
            .uid(uid)
            .condition("C")
            .with_query(alerting.Query("A").datasource_uid(DATASOURCE_UID)
                        .relative_time_range(RelativeTimeRange(from_val=window_s, to=0))
                        .model(flux_query("A", query)))
            .with_query(alerting.Query("B").datasource_uid(EXPR_DATASOURCE).model(reduce))
            .with_query(alerting.Query("C").datasource_uid(EXPR_DATASOURCE).model(threshold))
            .for_val(for_duration)
            .no_data_state(no_data)
            .exec_err_state(exec_err)
            .labels({"team": "iomt-security", "severity": severity})
            # no template variables: Grafana expands $NAME in provisioning files from its environment
            .annotations({"summary": summary, "description": description,
                          "__dashboardUid__": "iomt-ad-anomalies"}))


def anomaly_rate_rule(rate_percent: float, for_duration: str) -> Any:
    """Too many flagged records. No data is OK here: :func:`stream_silent_rule` alerts on that."""
    return _rule(
        f"IoMT-AD anomaly rate above {rate_percent:g}%", RULE_UID, flux.anomaly_rate(),
        duration_seconds(for_duration), "gt", rate_percent, for_duration, "OK",
        f"More than {rate_percent:g}% of IoMT flow records flagged as anomalous for {for_duration}",
        f"The share of flagged records over the last {for_duration} is above {rate_percent:g}%. Open the "
        "IoMT-AD Anomalies dashboard and the operator dashboard (iomt-ad dashboard) for the classes and "
        "devices involved.")


def stream_silent_rule(window: str = SILENT_WINDOW) -> Any:
    """No record reached InfluxDB for ``window``: the job, Kafka, the sensors or InfluxDB itself is
    down (or the job cannot write there). No data, or a failing query, alerts."""
    return _rule(
        f"IoMT-AD: no data from the stream for {window}", SILENT_RULE_UID, flux.record_count(),
        duration_seconds(window), "lt", 1, "0s", "Alerting",
        f"No scored IoMT flow record reached InfluxDB in the last {window}",
        "The dashboards and the anomaly-rate alert see nothing. Check the streaming job (iomt-ad stream), "
        "Kafka and the sensors, and InfluxDB; batch_log's influx_failed says whether the job could not "
        "write. Once InfluxDB is back, iomt-ad influx-backfill sends the missing points from Delta.",
        exec_err="Alerting")


def kafka_gap_rule(window: str = GAP_WINDOW) -> Any:
    """Kafka records expired before the job read them (``kafka_gaps`` points). No data is OK: no gap."""
    return _rule(
        "IoMT-AD: Kafka records expired unread", GAP_RULE_UID, flux.kafka_records_lost(),
        duration_seconds(window), "gt", 0, "0s", "OK",
        f"Kafka records were deleted by retention before the job read them (in the last {window})",
        "Those records were never scored. The kafka_gaps table has the topic, partition and offsets; "
        "raise the topic's retention or keep the job running.", severity="warning")


def drift_rule(window: str = DRIFT_WINDOW) -> Any:
    """The traffic of an hour and device group drifted from the model's reference (``model_drift``
    points the job marked drifted: ``drift.min_records`` records and a PSI at ``drift.threshold``,
    the job's configuration). No data is OK: no drift."""
    return _rule(
        "IoMT-AD: traffic drifted from the model's reference", DRIFT_RULE_UID, flux.drift_alert(),
        duration_seconds(window), "gt", 0, "0s", "OK",
        f"An hour of IoMT traffic (in the last {window}) lies far from what the model was trained on (PSI at or "
        "above drift.threshold)",
        "The detectors' scores and thresholds may no longer mean what they did: expect more false or missed "
        "alerts. The drift table (iomt-ad sql) and the Models dashboard name the device groups and features that "
        "moved; a new site or device needs a baseline of its own normal traffic (iomt-ad baseline).",
        severity="warning")


def contact_point() -> Any:
    from grafana_foundation_sdk.builders import alerting

    # type slack with an incoming-webhook URL: accepted by Slack and by Slack-compatible receivers
    # (Mattermost, Rocket.Chat, ...). $VAR is expanded by Grafana's provisioning at load time.
    return (alerting.ContactPoint().name(CONTACT_POINT).uid(CONTACT_POINT).type("slack")
            .settings({"url": f"${WEBHOOK_ENV}", "title": "{{ .CommonLabels.alertname }}",
                       "text": "{{ range .Alerts }}{{ .Annotations.summary }}. {{ .Annotations.description }} "
                               "{{ end }}"})
            .disable_resolve_message(False))


def policy() -> Any:
    from grafana_foundation_sdk.builders import alerting

    return (alerting.NotificationPolicy().receiver(CONTACT_POINT).group_by(["grafana_folder", "alertname"])
            .group_wait("30s").group_interval("5m").repeat_interval("4h"))


def _plain(obj: Any) -> Any:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return json.loads(json.dumps(obj, cls=JSONEncoder))


def provisioning(rate_percent: float = DEFAULT_RATE_PERCENT, for_duration: str = DEFAULT_FOR) -> dict[str, Any]:
    """Grafana's alerting file-provisioning document (apiVersion 1)."""
    rules = []
    for built in (anomaly_rate_rule(rate_percent, for_duration), stream_silent_rule(), kafka_gap_rule(),
                  drift_rule()):
        rule = _plain(built.build())
        for api_only in ("folderUID", "orgID", "ruleGroup"):  # the file layout sets these on the group
            rule.pop(api_only, None)
        rules.append(rule)
    point = _plain(contact_point().build())
    receiver = {key: point[key] for key in ("uid", "type", "settings", "disableResolveMessage") if key in point}
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m", "rules": rules}],
        "contactPoints": [{"orgId": 1, "name": point["name"], "receivers": [receiver]}],
        "policies": [{"orgId": 1, **_plain(policy().build())}],
    }


def render(rate_percent: float = DEFAULT_RATE_PERCENT, for_duration: str = DEFAULT_FOR) -> str:
    import yaml

    header = ("# Generated by `iomt-ad grafana` (make grafana) from jobs/grafana/alerts.py; do not edit.\n"
              f"# The webhook URL comes from the environment variable {WEBHOOK_ENV} of the Grafana server.\n")
    return header + yaml.safe_dump(provisioning(rate_percent, for_duration), sort_keys=True,
                                   default_flow_style=False, allow_unicode=True, width=120)

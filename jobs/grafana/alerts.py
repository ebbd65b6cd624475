"""Grafana alerting provisioning for IoMT-AD, built with grafana-foundation-sdk's alerting builders.

One rule: the anomaly rate (share of flagged records, over a window as long as ``for``) stays above
a threshold for ``for`` minutes. Notifications go to a Slack-compatible incoming-webhook contact
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


def duration_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", text.strip())
    if not match:
        raise ValueError(f"alert duration {text!r}: write it as <number>s, <number>m or <number>h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def anomaly_rate_rule(rate_percent: float, for_duration: str) -> Any:
    from grafana_foundation_sdk.builders import alerting, expr
    from grafana_foundation_sdk.models.alerting import RelativeTimeRange


    window = duration_seconds(for_duration)
    # alert rules have no dashboard variables: the bucket comes from Grafana's environment
    rate_query = flux.anomaly_rate().replace(f"${{{flux.BUCKET_VARIABLE}}}", f"${BUCKET_ENV}")
    reduce = expr.TypeReduce().ref_id("B").expression("A").reducer("last").settings(
        expr.ExprTypeReduceSettings().mode("dropNN"))
    threshold = expr.TypeThreshold().ref_id("C").expression("B").conditions([
        expr.ExprTypeThresholdConditions().evaluator(
            expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([rate_percent]))])
    return (alerting.Rule(f"IoMT-AD anomaly rate above {rate_percent:g}%")
            .uid(RULE_UID)
            .condition("C")
            .with_query(alerting.Query("A").datasource_uid(DATASOURCE_UID)
                        .relative_time_range(RelativeTimeRange(from_val=window, to=0))
                        .model(flux_query("A", rate_query)))
            .with_query(alerting.Query("B").datasource_uid(EXPR_DATASOURCE).model(reduce))
            .with_query(alerting.Query("C").datasource_uid(EXPR_DATASOURCE).model(threshold))
            .for_val(for_duration)
            .no_data_state("OK")
            .exec_err_state("Error")
            .labels({"team": "iomt-security", "severity": "critical"})
            .annotations({
                "summary": f"More than {rate_percent:g}% of IoMT flow records flagged as anomalous "
                           f"for {for_duration}",
                # no template variables: Grafana expands $NAME in provisioning files from its environment
                "description": f"The share of flagged records over the last {for_duration} is above "
                               f"{rate_percent:g}%. Open the IoMT-AD Anomalies dashboard and the operator "
                               "dashboard (iomt-ad dashboard) for the classes and devices involved.",
                "__dashboardUid__": "iomt-ad-anomalies",
            }))


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
    rule = _plain(anomaly_rate_rule(rate_percent, for_duration).build())
    for api_only in ("folderUID", "orgID", "ruleGroup"):  # the file layout sets these on the group
        rule.pop(api_only, None)
    point = _plain(contact_point().build())
    receiver = {key: point[key] for key in ("uid", "type", "settings", "disableResolveMessage") if key in point}
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m", "rules": [rule]}],
        "contactPoints": [{"orgId": 1, "name": point["name"], "receivers": [receiver]}],
        "policies": [{"orgId": 1, **_plain(policy().build())}],
    }


def render(rate_percent: float = DEFAULT_RATE_PERCENT, for_duration: str = DEFAULT_FOR) -> str:
    import yaml

    header = ("# Generated by `iomt-ad grafana` (make grafana) from jobs/grafana/alerts.py; do not edit.\n"
              f"# The webhook URL comes from the environment variable {WEBHOOK_ENV} of the Grafana server.\n")
    return header + yaml.safe_dump(provisioning(rate_percent, for_duration), sort_keys=True,
                                   default_flow_style=False, allow_unicode=True, width=120)

"""What the Grafana dashboards and alert rules share: the InfluxDB datasource they name and the
Flux query target (grafana-foundation-sdk has no InfluxDB query type)."""
from __future__ import annotations

from typing import Any

DATASOURCE_UID = "iomt-influxdb"   # fixed in docker/grafana/provisioning/datasources/influxdb.yaml
DATASOURCE_TYPE = "influxdb"


def sdk() -> Any:
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError as exc:  # pragma: no cover - installed with the project
        raise ImportError("grafana-foundation-sdk is missing: run `make setup` "
                          "(pip install -e '.[dev]')") from exc
    return grafana_foundation_sdk


def flux_query(ref_id: str, query: str, hide: bool = False) -> Any:
    """A Grafana InfluxDB (Flux) target; the SDK has no InfluxDB query type, so this is one."""
    sdk()
    from grafana_foundation_sdk.cog import builder, variants

    class FluxQuery(variants.Dataquery):
        def to_json(self) -> dict[str, object]:
            payload: dict[str, object] = {
                "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
                "query": query, "refId": ref_id}
            if hide:
                payload["hide"] = True
            return payload

    class FluxQueryBuilder(builder.Builder[variants.Dataquery]):
        def build(self) -> variants.Dataquery:
            return FluxQuery()

    return FluxQueryBuilder()


def datasource_ref() -> Any:
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    return DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

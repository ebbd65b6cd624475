"""docker/docker-compose.yml and docker/Dockerfile, checked without a Docker engine: the file parses,
every service, file, directory and build context it references exists, long-running services have a
health check and a restart policy, and no secret is written in it (only ${VARIABLES}). Exposure:
every published port is bound to loopback unless IOMT_AD_BIND_ADDRESS says otherwise, only InfluxDB
and the tokens service see InfluxDB's operator token (the job and Grafana get scoped tokens through
a volume), and the dashboard serves the network only with sign-in."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
SECRET_KEY = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|PRIVATE_KEY|WEBHOOK)", re.IGNORECASE)
ONLY_VARIABLE = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")
ONE_SHOT = {"kafka-init", "influxdb-tokens"}
EXPECTED = {"kafka", "influxdb", "influxdb-tokens", "grafana", "stream", "replayer", "dashboard"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def test_services_and_images(compose) -> None:
    services = compose["services"]
    assert EXPECTED <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["influxdb"]["image"] == "influxdb:2.7"
    for name, service in services.items():
        image = service.get("image", "")
        assert not image.endswith(":latest") and (":" in image or "build" in service), f"{name}: pin the image"


def test_health_checks_restart_policies_and_dependencies(compose) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, f"{name}: restart policy"
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name}: health check"
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_referenced_files_and_build_contexts_exist(compose) -> None:
    checked = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DOCKER / (build if isinstance(build, str) else build["context"])).resolve()
            assert context.is_dir(), f"{name}: build context {context}"
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile}"
            checked += 1
        for volume in service.get("volumes") or []:
            source = (volume if isinstance(volume, str) else volume.get("source", "")).split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), f"{name}: bind mount {source} does not exist"
                checked += 1
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared volume {source}"
        for env_file in service.get("env_file") or []:
            pytest.fail(f"{name}: env_file {env_file} — secrets come through ${{VARIABLES}} from docker/.env")
    assert checked >= 4
    grafana = compose["services"]["grafana"]["volumes"]
    assert any(v.startswith("./grafana/provisioning:") for v in grafana)
    assert any(v.startswith("./grafana/dashboards:") for v in grafana)


def test_commands_use_existing_configurations(compose) -> None:
    stream = compose["services"]["stream"]["command"]
    conf = stream[stream.index("--conf") + 1]
    assert conf.startswith("conf/docker/")  # the Dockerfile copies docker/conf/ to conf/docker/
    assert (DOCKER / "conf" / Path(conf).name).is_file()
    replay = compose["services"]["replayer"]["command"]
    assert (REPO / replay[replay.index("--data") + 1]).is_dir()


def test_no_secret_literal(compose) -> None:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key):
                assert ONLY_VARIABLE.match(value), f"{name}.{key} must be a ${{VARIABLE}}, not a literal"
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"(?i)(token|password)\s*[:=]\s*['\"]?[A-Za-z0-9+/_-]{12,}", text)


def test_env_example_covers_every_required_variable() -> None:
    text = "\n".join(line.split("#", 1)[0] for line in COMPOSE.read_text(encoding="utf-8").splitlines())
    required = set(re.findall(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", text))
    example = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in (DOCKER / ".env.example").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert required <= set(example)
    for key, value in example.items():
        if SECRET_KEY.search(key) and value:
            assert value.startswith("change-me"), f".env.example {key} must be a placeholder"


def test_env_file_is_ignored_by_git() -> None:
    result = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO)
    assert result.returncode == 0, "add docker/.env to .gitignore: it holds the real secrets"


def test_dockerfile_copies_only_what_exists() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11" in dockerfile and "openjdk-17" in dockerfile
    assert "conf/jars/pom.xml" in dockerfile and "dependency:copy-dependencies" in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


BIND = "${IOMT_AD_BIND_ADDRESS:-127.0.0.1}"


def _env_example() -> dict[str, str]:
    return {line.split("=", 1)[0]: line.split("=", 1)[1] for line in (DOCKER / ".env.example").read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def test_published_ports_bind_to_loopback_unless_told_otherwise(compose) -> None:
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            assert isinstance(port, str) and port.startswith(f"{BIND}:"), \
                f"{name}: publish {port!r} as \"{BIND}:HOST:CONTAINER\""
            published += 1
    assert published == 4  # Kafka (for producers on the host), InfluxDB, Grafana, the dashboard
    assert _env_example()["IOMT_AD_BIND_ADDRESS"] == "127.0.0.1"


def _mount(service: dict, volume: str) -> tuple[str, bool]:
    """(path, read-only) where ``service`` mounts the named ``volume``."""
    for entry in service.get("volumes") or []:
        parts = entry.split(":")
        if parts[0] == volume:
            return parts[1], parts[2:] == ["ro"]
    raise AssertionError(f"{volume} is not mounted")


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_job_and_grafana_get_scoped_influxdb_tokens_not_the_operators(compose) -> None:
    from jobs.config import load_config

    services = compose["services"]
    for name, service in services.items():
        for key, value in _environment(service).items():
            if "INFLUXDB_ADMIN_TOKEN" in value or key == "INFLUXDB_TOKEN":
                assert name in {"influxdb", "influxdb-tokens"}, f"{name} must not see the operator token ({key})"
    assert "INFLUXDB_ADMIN_TOKEN" in _env_example()

    tokens = services["influxdb-tokens"]
    assert tokens["command"][0] == "influx-tokens"
    assert tokens["depends_on"]["influxdb"] == {"condition": "service_healthy"}
    secrets_dir, read_only = _mount(tokens, "influxdb-tokens")
    assert not read_only
    # the job: the token file its configuration names, in the volume, mounted read-only
    conf = _option(tokens["command"], "--conf")
    assert conf == services["stream"]["command"][services["stream"]["command"].index("--conf") + 1]
    influx = load_config(DOCKER / "conf" / Path(conf).name).influxdb
    assert influx.token_env is None and Path(influx.token_file).parent == Path(secrets_dir)
    assert _mount(services["stream"], "influxdb-tokens") == (secrets_dir, True)
    assert services["stream"]["depends_on"]["influxdb-tokens"] == {"condition": "service_completed_successfully"}
    # Grafana: its datasource reads the read-only token's file, from the same volume
    grafana_file = _option(tokens["command"], "--grafana-token-file")
    assert _option(tokens["command"], "--grafana-token-mode") == "644"  # Grafana runs as its own user
    assert Path(grafana_file).parent == Path(secrets_dir)
    assert _mount(services["grafana"], "influxdb-tokens") == (secrets_dir, True)
    assert services["grafana"]["depends_on"]["influxdb-tokens"] == {"condition": "service_completed_successfully"}
    datasource = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" / "influxdb.yaml").read_text())
    assert datasource["datasources"][0]["secureJsonData"]["token"] == f"$__file{{{grafana_file}}}"
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert secrets_dir in dockerfile  # created in the image, owned by its user: a new volume takes that owner


def test_the_dashboard_serves_the_network_only_with_sign_in(compose, tmp_path) -> None:
    import argparse

    from jobs.dashboard import add_arguments, auth, server_environment
    from jobs.dashboard.data import DashboardSettings

    service = compose["services"]["dashboard"]
    env = _environment(service)
    assert ONLY_VARIABLE.match(env["IOMT_AD_DASHBOARD_PASSWORD"]) and ":?" in env["IOMT_AD_DASHBOARD_PASSWORD"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(service["command"][1:])
    assert not auth.is_loopback(args.host)
    settings = DashboardSettings(tables_dir=tmp_path, model_dir=REPO / "models" / "v3")
    example = _env_example()
    served = server_environment(args, settings, {"IOMT_AD_DASHBOARD_PASSWORD": example["IOMT_AD_DASHBOARD_PASSWORD"],
                                                 "IOMT_AD_DASHBOARD_USER": example["IOMT_AD_DASHBOARD_USER"]})
    assert list(auth.credentials_from_env(served)) == ["operator"]
    with pytest.raises(auth.AuthConfigError, match="without sign-in"):
        server_environment(args, settings, {})

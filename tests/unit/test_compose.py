"""Structure of the local Airflow stack (docker-compose.yml, docker/, .env.example), checked
without Docker: the file is interpolated the way `docker compose` does it and parsed with PyYAML."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "airflow" / "Dockerfile"
_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init")
LONG_RUNNING = ("postgres", "redis", "minio") + AIRFLOW_SERVICES[:-1]


def _env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _interpolate(text: str, env: dict[str, str]) -> str:
    """`docker compose` variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}; `$$` → `$`."""
    def sub(m):
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        return value if value not in (None, "") else (default or "")
    return _VAR.sub(sub, text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(_interpolate(COMPOSE.read_text(), {}))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_every_variable_has_a_default_and_is_documented_in_env_example():
    text = COMPOSE.read_text()
    names = {m.group(1): m.group(2) for m in _VAR.finditer(text)}
    assert names, "no variables found"
    missing_default = sorted(n for n, d in names.items() if d is None)
    assert missing_default == []
    example = _env_example()
    assert sorted(set(names) - set(example)) == []
    # with .env.example copied to .env the stack resolves to the same values as with no .env at all
    assert yaml.safe_load(_interpolate(text, example)) == yaml.safe_load(_interpolate(text, {}))


def test_env_example_holds_only_placeholders():
    example = _env_example()
    for key, value in example.items():
        if any(word in key for word in ("PASSWORD", "SECRET", "KEY")):
            assert value == "" or value in {"airflow", "reconcile", "minioadmin"} or "local-dev-only" in value, key


def test_services_of_the_official_airflow_3_shape(services):
    assert set(services) == {"postgres", "redis", "minio", "minio-init", "demo-inputs", "warehouse-init",
                             *AIRFLOW_SERVICES}
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES[:-1]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-worker": "celery worker",
                        "airflow-triggerer": "triggerer"}
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:airflow@postgres/airflow"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert services[name]["user"] == ("0:0" if name == "airflow-init" else "50000:0")
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "airflow version" in services["airflow-init"]["command"][-1]


def test_depends_on_conditions(services):
    for name in AIRFLOW_SERVICES[:-1]:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}
        assert deps["redis"] == {"condition": "service_healthy"}
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-init"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                      "redis": {"condition": "service_healthy"}}
    worker = services["airflow-worker"]["depends_on"]
    assert worker["airflow-apiserver"] == {"condition": "service_healthy"}
    assert worker["minio-init"] == worker["warehouse-init"] == {"condition": "service_completed_successfully"}
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"},
                                                    "demo-inputs": {"condition": "service_completed_successfully"}}
    assert services["warehouse-init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["demo-inputs"]["depends_on"] == {}
    # every condition names a service that exists and, for "healthy", has a healthcheck
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (name, dep)


def test_healthchecks(services):
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["interval"] and check["retries"] >= 5, name
    assert services["airflow-apiserver"]["healthcheck"]["test"][-1] == "http://localhost:8080/api/v2/version"
    assert services["airflow-scheduler"]["healthcheck"]["test"][-1] == "http://localhost:8974/health"
    assert "DagProcessorJob" in services["airflow-dag-processor"]["healthcheck"]["test"][1]
    assert "TriggererJob" in services["airflow-triggerer"]["healthcheck"]["test"][1]
    assert services["postgres"]["healthcheck"]["test"] == ["CMD", "pg_isready", "-U", "airflow"]
    for name in ("minio-init", "demo-inputs", "warehouse-init", "airflow-init"):
        assert services[name]["restart"] == "no"


def test_dags_and_plugins_are_mounted(services):
    for name in AIRFLOW_SERVICES:
        volumes = services[name]["volumes"]
        assert "./dags:/opt/airflow/dags" in volumes and "./plugins:/opt/airflow/plugins" in volumes, name
    assert (REPO / "dags" / "monthly_reconciliation.py").is_file()
    assert (REPO / "dags" / "dispute_rerun.py").is_file()


def test_image_builds_from_the_repo_with_the_constraints_file(services):
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s]+)$", (REPO / "requirements" / "constraints.txt").read_text(),
                           re.M))
    for name in AIRFLOW_SERVICES + ("demo-inputs", "warehouse-init"):
        build = services[name]["build"]
        assert build["context"] == "." and build["dockerfile"] == "docker/airflow/Dockerfile", name
        assert build["args"]["AIRFLOW_VERSION"] == pins["apache-airflow"]
        assert services[name]["image"] == "whatsapp-reconcile-airflow:local"
    dockerfile = DOCKERFILE.read_text()
    assert f"ARG AIRFLOW_VERSION={pins['apache-airflow']}" in dockerfile
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in dockerfile
    assert "--constraint requirements/constraints.txt" in dockerfile
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile and '".[airflow]"' in dockerfile
    for copied in ("pyproject.toml", "README.md", "requirements/", "reconcile/", "sql/"):
        assert f" {copied} " in dockerfile.replace("\n", " ") and (REPO / copied).exists(), copied
    ignore = (REPO / "docker" / "airflow" / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:5] == ["!pyproject.toml", "!README.md", "!requirements/", "!reconcile/",
                                                    "!sql/"]


def test_host_ports_do_not_clash(services):
    published = []
    for name, svc in services.items():
        for spec in svc.get("ports", []):
            published.append(int(str(spec).split(":")[0]))
    assert sorted(published) == [5433, 8080, 9000, 9001]
    assert len(published) == len(set(published))
    assert 5432 not in published          # the host's own Postgres keeps its port


def test_connections_come_from_environment_variables(services):
    sys.path.insert(0, str(REPO / "dags"))
    try:
        import reconcile_airflow as support
    finally:
        sys.path.remove(str(REPO / "dags"))
    env = services["airflow-worker"]["environment"]
    aws = json.loads(env["AIRFLOW_CONN_" + support.MONTHLY_DEFAULTS["aws_conn_id"].upper()])
    assert aws == {"conn_type": "aws", "login": "minioadmin", "password": "minioadmin",
                   "extra": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}}
    warehouse = json.loads(env["AIRFLOW_CONN_" + support.MONTHLY_DEFAULTS["warehouse_conn_id"].upper()])
    assert warehouse == {"conn_type": "postgres", "host": "postgres", "port": 5432, "login": "reconcile",
                         "password": "reconcile", "schema": "reconcile"}
    assert env["AIRFLOW_VAR_RECONCILE_MONTHLY_SCHEDULE"] == "0 6 5 * *" == support.DEFAULT_SCHEDULE
    assert services["minio-init"]["environment"]["RECONCILE_BUCKET"] == support.BUCKET


def test_init_services_run_the_right_commands(services):
    # Postgres creates the warehouse role and database on first start
    assert "./docker/postgres/init-warehouse.sh:/docker-entrypoint-initdb.d/10-init-warehouse.sh:ro" in \
        services["postgres"]["volumes"]
    init_sql = (REPO / "docker" / "postgres" / "init-warehouse.sh").read_text()
    assert "CREATE ROLE %I LOGIN PASSWORD %L" in init_sql and "CREATE DATABASE %I OWNER %I" in init_sql
    assert services["postgres"]["environment"]["WAREHOUSE_DB"] == "reconcile"
    # the demo inputs are generated by the package, then mirrored into the bucket
    assert services["demo-inputs"]["command"] == ["-c", "python -m reconcile.demo /demo/inputs"]
    assert "demo-inputs:/demo/inputs:ro" in services["minio-init"]["volumes"]
    assert services["minio-init"]["command"] == ["/upload-demo-inputs.sh"]
    upload = (REPO / "docker" / "minio" / "upload-demo-inputs.sh").read_text()
    assert 'mc mb --ignore-existing "local/${RECONCILE_BUCKET}"' in upload
    assert 'mc mirror --overwrite /demo/inputs "local/${RECONCILE_BUCKET}"' in upload
    # the warehouse tables come from sql/ through the package's own migrations
    command = services["warehouse-init"]["command"][-1]
    assert "Warehouse.from_url(" in command and ".ensure_schema()" in command
    assert "${WAREHOUSE_USER}" in command          # `$$` in the file: expanded by the container's shell
    for script in ("docker/postgres/init-warehouse.sh", "docker/minio/upload-demo-inputs.sh"):
        assert os.access(REPO / script, os.X_OK), script


def test_demo_main_is_what_demo_inputs_runs():
    from reconcile import demo

    assert callable(demo.main) and demo.main([]) == 2

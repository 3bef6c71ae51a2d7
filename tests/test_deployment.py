"""docker/: Docker cannot run on these machines, so the production files are checked by parsing:
the compose services exist, every variable they use is documented in .env.example, and the
Dagster instance config names the storage and the code location consistently."""

import re
import tomllib
from pathlib import Path

import yaml

from pocketquant_pipelines.settings import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker/compose.yml").read_text())
DAGSTER_YAML = yaml.safe_load((ROOT / "docker/dagster.yaml").read_text())
EXAMPLE_KEYS = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.M))
APP_SERVICES = ("dagster-code", "dagster-webserver", "dagster-daemon", "streamer")


def test_compose_has_every_service():
    expected = {"mongodb", "redis", "postgres", *APP_SERVICES}
    assert expected <= set(COMPOSE["services"])


def test_app_services_get_every_variable_from_env_example():
    for name in APP_SERVICES:
        env = COMPOSE["services"][name]["environment"]
        unknown = set(env) - EXAMPLE_KEYS
        assert not unknown, f"{name} sets variables missing from .env.example: {unknown}"
        # Production points storage at the servers, never at embedded defaults.
        assert env["MONGODB_URL"].startswith("mongodb://mongodb:")
        assert env["REDIS_URL"].startswith("redis://redis:")


def test_interpolated_variables_are_documented():
    text = (ROOT / "docker/compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))  # $${X} is the container's own
    assert used, "compose interpolates the user's .env values"
    assert used <= EXAMPLE_KEYS, f"undocumented: {used - EXAMPLE_KEYS}"
    assert used - {"DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"} <= set(ENV_VARS) | {"DAGSTER_HOME"}


def test_dagster_yaml_uses_postgres_with_psycopg2_from_env():
    pg = DAGSTER_YAML["storage"]["postgres"]["postgres_db"]
    assert pg["scheme"] == "postgresql+psycopg2"
    env_vars = {v["env"] for k, v in pg.items() if isinstance(v, dict)}
    assert env_vars == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    for name in APP_SERVICES:
        assert env_vars <= set(COMPOSE["services"][name]["environment"]), name
    assert DAGSTER_YAML["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert DAGSTER_YAML["concurrency"]["runs"]["max_concurrent_runs"] > 0


def test_code_location_name_agrees_everywhere():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    name = pyproject["tool"]["dg"]["project"]["code_location_name"]
    workspace = yaml.safe_load((ROOT / "docker/workspace_prod.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["location_name"] == name
    command = COMPOSE["services"]["dagster-code"]["command"]
    assert command[command.index("--location-name") + 1] == name
    assert str(grpc["port"]) == command[command.index("-p") + 1]


def test_dagster_yaml_loads_as_a_real_instance_config():
    # Dagster's own schema validation of the production file (no Postgres connection is made).
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(ROOT / "docker"), "dagster.yaml")
    assert "storage" in config

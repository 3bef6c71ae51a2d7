"""Configuration: .env + environment, defaults, clear errors, secrets never printed or logged."""

import io
import json
import re
from pathlib import Path

import pytest
import structlog

from pocketquant_pipelines.errors import ConfigError
from pocketquant_pipelines.logging import configure_logging
from pocketquant_pipelines.settings import DEFAULT_TV_WS_URL, ENV_VARS, load_settings

ROOT = Path(__file__).resolve().parents[1]
NO_DOTENV = Path("/nonexistent/.env")
DAGSTER_PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def example_keys() -> list[str]:
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.M)


def test_env_example_lists_every_setting_and_nothing_unknown():
    keys = example_keys()
    assert len(keys) == len(set(keys)), "a setting is listed twice"
    assert set(ENV_VARS) <= set(keys), f"missing from .env.example: {set(ENV_VARS) - set(keys)}"
    # The rest are Dagster's own variables (instance directory, production Postgres storage).
    assert set(keys) - set(ENV_VARS) == {"DAGSTER_HOME", *DAGSTER_PG_VARS}


def test_env_example_values_load_cleanly(tmp_path):
    # The shipped example must be a valid configuration as it is (empty URL = embedded).
    settings = load_settings(env={}, dotenv_path=ROOT / ".env.example")
    assert settings.mongodb_url is None and settings.redis_url is None
    assert settings.tradingview_ws_url == DEFAULT_TV_WS_URL
    assert settings.streamer_cache_flush_ms == 250


def test_defaults_are_embedded():
    s = load_settings(env={}, dotenv_path=NO_DOTENV)
    assert s.mongodb_url is None and s.redis_url is None
    assert s.bar_store_path.name == "bars.sqlite3"
    assert s.log_format == "console"


def test_dotenv_is_read_and_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("REDIS_URL=redis://localhost:6379/3\nLOG_LEVEL=debug\n")
    s = load_settings(env={"LOG_LEVEL": "warning"}, dotenv_path=dotenv)
    assert s.redis_url.reveal() == "redis://localhost:6379/3"
    assert s.log_level == "WARNING"


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("TRADINGVIEW_CONCURRENCY", "four", "'four'"),
        ("TRADINGVIEW_CONCURRENCY", "0", "'0'"),
        ("STREAMER_HEALTH_PORT", "70000", "'70000'"),
        ("LOG_FORMAT", "xml", "'xml'"),
        ("TRADINGVIEW_WS_URL", "http://example", "'http://example'"),
        ("STREAMER_REGISTRY_POLL_S", "-1", "'-1'"),
    ],
)
def test_bad_values_name_the_variable_and_value(var, value, named):
    with pytest.raises(ConfigError) as err:
        load_settings(env={var: value}, dotenv_path=NO_DOTENV)
    assert var in str(err.value) and named in str(err.value)


def test_bad_url_error_does_not_echo_credentials():
    with pytest.raises(ConfigError) as err:
        load_settings(env={"MONGODB_URL": "postgres://admin:hunter2@db/x"}, dotenv_path=NO_DOTENV)
    assert "MONGODB_URL" in str(err.value) and "hunter2" not in str(err.value)


def test_username_without_password_is_an_error():
    with pytest.raises(ConfigError, match="TRADINGVIEW_PASSWORD"):
        load_settings(env={"TRADINGVIEW_USERNAME": "me"}, dotenv_path=NO_DOTENV)


def test_secrets_never_print():
    s = load_settings(
        env={"TRADINGVIEW_AUTH_TOKEN": "eyJsecret", "TRADINGVIEW_USERNAME": "me",
             "TRADINGVIEW_PASSWORD": "pw123", "REDIS_URL": "redis://:redispw@h:6379/0"},
        dotenv_path=NO_DOTENV,
    )
    shown = repr(s) + str(s.redacted())
    for secret in ("eyJsecret", "pw123", "redispw"):
        assert secret not in shown
    assert s.tradingview_auth_token.reveal() == "eyJsecret"


def test_json_logs_mask_secret_fields(capsys):
    configure_logging("json", "INFO", force=True)
    try:
        structlog.get_logger().info(
            "connecting", auth_token="eyJsecret", redis_url="redis://:redispw@h:6379/0", symbol="NASDAQ:AAPL"
        )
        line = capsys.readouterr().err.strip().splitlines()[-1]
        event = json.loads(line)
        assert event["event"] == "connecting" and event["symbol"] == "NASDAQ:AAPL"
        assert "eyJsecret" not in line and "redispw" not in line
        assert event["redis_url"] == "redis://***@h:6379/0"
    finally:
        configure_logging("console", "INFO", force=True)


@pytest.mark.parametrize("raw", ["0", "-5", "nan", "inf", "86401", "soon"])
def test_clock_skew_rejects_what_is_not_a_bounded_positive_number(raw):
    with pytest.raises(ConfigError, match="POCKETQUANT_CLOCK_SKEW_S"):
        load_settings(env={"POCKETQUANT_CLOCK_SKEW_S": raw}, dotenv_path=Path("/nonexistent"))


def test_clock_skew_default_and_override():
    assert load_settings(env={}, dotenv_path=Path("/nonexistent")).clock_skew_s == 300.0
    assert load_settings(env={"POCKETQUANT_CLOCK_SKEW_S": "60"},
                         dotenv_path=Path("/nonexistent")).clock_skew_s == 60.0

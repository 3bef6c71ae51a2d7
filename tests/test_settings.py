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
    assert s.redis_url.get_secret_value() == "redis://localhost:6379/3"
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
    assert s.tradingview_auth_token.get_secret_value() == "eyJsecret"


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


@pytest.mark.parametrize("var", ["TRADINGVIEW_REQUEST_TIMEOUT_S", "TRADINGVIEW_HEARTBEAT_TIMEOUT_S",
                                 "STREAMER_REGISTRY_POLL_S"])
@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "0", "3601", "1e9"])
def test_seconds_must_be_finite_and_bounded(var, raw):
    with pytest.raises(ConfigError) as err:
        load_settings(env={var: raw}, dotenv_path=NO_DOTENV)
    [line] = str(err.value).splitlines()
    assert line.startswith(f"{var}={raw!r}: ")


@pytest.mark.parametrize(("var", "raw"), [
    ("SYNC_FIRST_BARS", "1000001"), ("SYNC_DEFAULT_BARS", "2.5"), ("TRADINGVIEW_MAX_CONNECTIONS", "65"),
    ("TRADINGVIEW_CONCURRENCY", "257"), ("STREAMER_CACHE_FLUSH_MS", "60001"), ("STREAMER_STORE_BATCH_MS", "-1"),
    ("SYNC_OVERLAP_BARS", "10001"), ("STREAMER_HEALTH_PORT", "-1"),
])
def test_integers_are_bounded(var, raw):
    with pytest.raises(ConfigError, match=re.escape(f"{var}={raw!r}")):
        load_settings(env={var: raw}, dotenv_path=NO_DOTENV)


def test_upper_bounds_load():
    s = load_settings(env={"TRADINGVIEW_REQUEST_TIMEOUT_S": "3600", "SYNC_FIRST_BARS": "1000000",
                           "STREAMER_STORE_BATCH_MS": "60000"}, dotenv_path=NO_DOTENV)
    assert (s.tradingview_request_timeout_s, s.sync_first_bars, s.streamer_store_batch_ms) == (3600.0, 1000000, 60000)


def test_the_bar_bound_is_the_clients():
    from pocketquant_pipelines.settings import MAX_BARS
    from pocketquant_pipelines.tradingview.history import MAX_BARS as CLIENT_MAX_BARS

    assert MAX_BARS == CLIENT_MAX_BARS


def test_health_port_zero_means_any_free_port():
    assert load_settings(env={"STREAMER_HEALTH_PORT": "0"}, dotenv_path=NO_DOTENV).streamer_health_port == 0


def test_secrets_are_secretstr_and_never_dump_in_clear():
    from pydantic import SecretStr

    s = load_settings(env={"TRADINGVIEW_AUTH_TOKEN": " eyJsecret ", "TRADINGVIEW_USERNAME": "me",
                           "TRADINGVIEW_PASSWORD": "pw123", "MONGODB_URL": "mongodb://u:mongopw@h/db",
                           "REDIS_URL": "redis://:redispw@h:6379/0"}, dotenv_path=NO_DOTENV)
    secrets = (s.tradingview_auth_token, s.tradingview_password, s.mongodb_url, s.redis_url)
    assert all(isinstance(v, SecretStr) for v in secrets)
    dumped = s.model_dump_json() + json.dumps(s.redacted()) + json.dumps(s.model_dump(), default=str)
    for secret in ("eyJsecret", "pw123", "mongopw", "redispw"):
        assert secret not in dumped
    with pytest.raises(TypeError):  # the old str subclass serialised its value as it was
        json.dumps({"token": s.tradingview_auth_token})
    assert s.tradingview_auth_token.get_secret_value() == "eyJsecret"  # stripped, as before
    assert s.mongodb_url.get_secret_value() == "mongodb://u:mongopw@h/db"


@pytest.mark.parametrize("var", ["TRADINGVIEW_AUTH_TOKEN", "TRADINGVIEW_PASSWORD", "REDIS_URL", "MONGODB_URL"])
def test_errors_never_show_a_secret(var):
    bad = {"TRADINGVIEW_AUTH_TOKEN": "x" * 5, "TRADINGVIEW_PASSWORD": "p"}.get(var, "http://user:hunter2@db/x")
    env = {var: bad, "TRADINGVIEW_CONCURRENCY": "nope"}
    with pytest.raises(ConfigError) as err:
        load_settings(env=env, dotenv_path=NO_DOTENV)
    assert "hunter2" not in str(err.value) and "TRADINGVIEW_CONCURRENCY='nope'" in str(err.value)


def test_ws_url_error_masks_a_user_and_password():
    with pytest.raises(ConfigError) as err:
        load_settings(env={"TRADINGVIEW_WS_URL": "http://me:hunter2@example/x"}, dotenv_path=NO_DOTENV)
    assert "TRADINGVIEW_WS_URL='http://***@example/x'" in str(err.value) and "hunter2" not in str(err.value)


def test_blank_values_are_unset_and_a_blank_environment_variable_hides_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("LOG_LEVEL=debug\nSTREAMER_HEALTH_PORT=9100\nSYNC_FIRST_BARS=   \n")
    s = load_settings(env={"LOG_LEVEL": "  "}, dotenv_path=dotenv)
    assert (s.log_level, s.streamer_health_port, s.sync_first_bars) == ("INFO", 9100, 5000)


def test_dotenv_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("SYNC_OVERLAP_BARS=7\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).sync_overlap_bars == 7
    monkeypatch.setenv("SYNC_OVERLAP_BARS", "9")  # env=None: the process environment wins
    assert load_settings().sync_overlap_bars == 9


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_logging_the_settings_object_or_its_secrets_never_prints_them(capsys, log_format):
    s = load_settings(env={"TRADINGVIEW_AUTH_TOKEN": "eyJsecret", "MONGODB_URL": "mongodb://u:mongopw@h:27017/",
                           "REDIS_URL": "redis://:redispw@h:6379/0"}, dotenv_path=NO_DOTENV)
    configure_logging(log_format, "INFO", force=True)
    try:
        log = structlog.get_logger()
        log.info("settings_loaded", settings=s, token=s.tradingview_auth_token, urls=[s.mongodb_url, s.redis_url],
                 nested={"redis": s.redis_url}, dumped=s.model_dump())
        err = capsys.readouterr().err
        assert "settings_loaded" in err
        for secret in ("eyJsecret", "mongopw", "redispw"):
            assert secret not in err
    finally:
        configure_logging("console", "INFO", force=True)


@pytest.mark.parametrize("url", ["mongodb://u:pw9secret@h:notaport/", "mongodb://u:pw9secret/x",
                                 "mongodb://u:pw9secret@bad host/", "redis://:pw9secret@h:6379/notadb",
                                 "u:pw9secret@host:27017", "mongodb://h/?password=pw9secret&x=1 2"])
def test_url_errors_never_echo_a_credential(url):
    var = "REDIS_URL" if url.startswith("redis") else "MONGODB_URL"
    with pytest.raises(ConfigError) as caught:
        load_settings(env={var: url}, dotenv_path=NO_DOTENV)
    assert var in str(caught.value) and "pw9secret" not in str(caught.value)


def test_an_unknown_variable_in_our_namespace_is_an_error_with_the_closest_name():
    with pytest.raises(ConfigError, match=r"STREAMER_REGISTRY_POL_S .*not a PocketQuant setting.*"
                                          r"did you mean STREAMER_REGISTRY_POLL_S"):
        load_settings(env={"STREAMER_REGISTRY_POL_S": "5"}, dotenv_path=NO_DOTENV)
    load_settings(env={"POCKETQUANT_TEST_MONGODB_URL": "x", "MONGODB_OTHER": "y"}, dotenv_path=NO_DOTENV)

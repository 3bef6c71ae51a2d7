"""All configuration, from the environment and ``.env`` (environment wins).

Every setting is listed in ``.env.example`` with its default, its bounds and its meaning. Unset
server URLs mean embedded backends. Secrets are ``pydantic.SecretStr``: repr, str, logs and
JSON dumps show ``**********``; ``.get_secret_value()`` is called only where one is sent.
"""

from collections.abc import Mapping
from contextvars import ContextVar
import difflib
import os
from pathlib import Path
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from pocketquant_pipelines.errors import ConfigError

DEFAULT_TV_WS_URL = "wss://data.tradingview.com/socket.io/websocket"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Upper bounds: far above any sensible value, low enough that a typo (an extra zero, a value
# in the wrong unit) is caught at start rather than as a process that waits for hours.
MAX_BARS = 1_000_000          # the TradingView client's own ceiling on a history request
MAX_SECONDS = 3600.0          # timeouts and poll periods
MAX_MILLISECONDS = 60_000     # streamer flush/batch periods
MAX_CLOCK_SKEW_S = 86_400.0
MAX_CONNECTIONS = 64
MAX_CONCURRENCY = 256
MAX_OVERLAP_BARS = 10_000
MAX_REPLICAS = 1024
# A WebSocket message from TradingView: a 5000-bar history page is about 0.5 MB, so the default
# cap leaves 16x headroom while one hostile message stays far below the process's memory goal.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MIN_MAX_MESSAGE_BYTES = 64 * 1024
MAX_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# The mapping load_settings was given in place of os.environ (None: the real environment).
# A context variable, so concurrent loads in threads or tasks never see each other's mapping.
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,\-]+")

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("pocketquant_environ", default=None)


def _var(name: str, **constraints: Any) -> Any:
    return Field(validation_alias=name, **constraints)


Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
Millis = Annotated[int, Field(gt=0, le=MAX_MILLISECONDS)]
BarCount = Annotated[int, Field(gt=0, le=MAX_BARS)]


class _EnvironSource(EnvSettingsSource):
    """The environment: ``os.environ``, or the mapping ``load_settings(env=...)`` was given.
    Blank values are kept here (a blank variable in the environment still hides the same one in
    ``.env``) and dropped by ``Settings`` before validation, so they mean "default"."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return dict(environ)


class _DefaultsOnTheClass(type(BaseSettings)):
    """``Settings.clock_skew_s`` is the field's default, as it is on a dataclass: functions
    take their defaults from it, so each default is written once, here."""

    def __getattr__(cls, item: str) -> Any:
        fields = cls.__dict__.get("__pydantic_fields__") or {}
        if item in fields and not fields[item].is_required():
            return fields[item].get_default(call_default_factory=True)
        return super().__getattr__(item)


class Settings(BaseSettings, metaclass=_DefaultsOnTheClass):
    """Every setting, validated; build it with :func:`load_settings` (errors as ConfigError)."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, env_file=None, env_file_encoding="utf-8",
        env_ignore_empty=False, validate_default=False,
    )

    # storage
    mongodb_url: SecretStr | None = _var("MONGODB_URL", default=None)
    mongodb_database: str = _var("MONGODB_DATABASE", default="pocketquant")
    # how long a MongoDB operation waits for a reachable server before it fails
    mongodb_timeout_s: Seconds = _var("MONGODB_TIMEOUT_S", default=5.0)
    redis_url: SecretStr | None = _var("REDIS_URL", default=None)
    data_dir: Path = _var("POCKETQUANT_DATA_DIR", default_factory=lambda: PROJECT_ROOT / "data")
    # logging
    log_format: Literal["console", "json"] = _var("LOG_FORMAT", default="console")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _var("LOG_LEVEL", default="INFO")
    # TradingView
    tradingview_ws_url: str = _var("TRADINGVIEW_WS_URL", default=DEFAULT_TV_WS_URL)
    tradingview_auth_token: SecretStr | None = _var("TRADINGVIEW_AUTH_TOKEN", default=None)
    tradingview_username: str | None = _var("TRADINGVIEW_USERNAME", default=None)
    tradingview_password: SecretStr | None = _var("TRADINGVIEW_PASSWORD", default=None)
    tradingview_max_connections: int = _var("TRADINGVIEW_MAX_CONNECTIONS", default=2, gt=0, le=MAX_CONNECTIONS)
    tradingview_concurrency: int = _var("TRADINGVIEW_CONCURRENCY", default=4, gt=0, le=MAX_CONCURRENCY)
    tradingview_request_timeout_s: Seconds = _var("TRADINGVIEW_REQUEST_TIMEOUT_S", default=30.0)
    tradingview_heartbeat_timeout_s: Seconds = _var("TRADINGVIEW_HEARTBEAT_TIMEOUT_S", default=30.0)  # 3x 10 s
    # the whole of one history request (connect, retry, every page), however busy the server is
    tradingview_history_deadline_s: Seconds = _var("TRADINGVIEW_HISTORY_DEADLINE_S", default=300.0)
    # a quote stream with no sign of life for this long (connected time) ends with an error
    tradingview_quote_silence_s: Seconds = _var("TRADINGVIEW_QUOTE_SILENCE_S", default=60.0)
    tradingview_max_message_bytes: int = _var("TRADINGVIEW_MAX_MESSAGE_BYTES", default=DEFAULT_MAX_MESSAGE_BYTES,
                                              ge=MIN_MAX_MESSAGE_BYTES, le=MAX_MAX_MESSAGE_BYTES)
    # sync
    sync_default_bars: BarCount = _var("SYNC_DEFAULT_BARS", default=500)
    sync_first_bars: BarCount = _var("SYNC_FIRST_BARS", default=5000)
    sync_overlap_bars: int = _var("SYNC_OVERLAP_BARS", default=2, gt=0, le=MAX_OVERLAP_BARS)
    # schedule cadence (cron, UTC): a deployment may sync more or less often than the defaults
    sync_all_symbols_cron: str = _var("SYNC_ALL_SYMBOLS_CRON", default="0 */6 * * *")
    sync_daily_data_cron: str = _var("SYNC_DAILY_DATA_CRON", default="0 9-17 * * 1-5")
    # clock sanity: ticks and bars dated beyond now + this, or before the epoch, are rejected
    clock_skew_s: float = _var("POCKETQUANT_CLOCK_SKEW_S", default=300.0, gt=0, le=MAX_CLOCK_SKEW_S,
                               allow_inf_nan=False)
    # stream-triggered ohlcv_dataset rebuilds: at most one (folding every changed key) per period
    dataset_rebuild_period_s: Seconds = _var("POCKETQUANT_DATASET_REBUILD_S", default=900.0)
    # streamer; health port 0 = any free port (the bound one is logged)
    streamer_health_port: int = _var("STREAMER_HEALTH_PORT", default=8765, ge=0, le=65535)
    streamer_cache_flush_ms: Millis = _var("STREAMER_CACHE_FLUSH_MS", default=250)
    streamer_store_batch_ms: Millis = _var("STREAMER_STORE_BATCH_MS", default=1000)
    streamer_registry_poll_s: Seconds = _var("STREAMER_REGISTRY_POLL_S", default=5.0)
    # the tick audit trail (data_dir/ticks): on by default, day directories kept this long
    tick_log_enabled: bool = _var("TICK_LOG_ENABLED", default=True)
    tick_log_retention_days: int = _var("TICK_LOG_RETENTION_DAYS", default=7, ge=1, le=3650)
    # scale-out: this replica's index among STREAMER_REPLICA_COUNT (market.replicas)
    streamer_replica_index: int = _var("STREAMER_REPLICA_INDEX", default=0, ge=0, le=MAX_REPLICAS - 1)
    streamer_replica_count: int = _var("STREAMER_REPLICA_COUNT", default=1, gt=0, le=MAX_REPLICAS)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvironSource(settings_cls), dotenv_settings

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and v.strip() == "")}
        return values

    @field_validator("mongodb_database", "tradingview_username", "tradingview_auth_token", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("mongodb_database", mode="after")
    @classmethod
    def _database_name(cls, value: str) -> str:
        bad = next((ch for ch in value if ch in '/\\. "$' or not ch.isprintable()), None)
        if not value or bad is not None or len(value.encode()) > 63:
            raise PydanticCustomError("database", "is not a MongoDB database name (1-63 bytes, none of / \\ . \" $ or spaces)")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _choice(cls, value: Any, info) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().lower() if info.field_name == "log_format" else value.strip().upper()

    @field_validator("mongodb_url", mode="before")
    @classmethod
    def _mongodb_url(cls, value: Any) -> Any:
        return _server_url(value, "mongodb", "mongodb+srv")

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: Any) -> Any:
        return _server_url(value, "redis", "rediss", "unix")

    @field_validator("tradingview_ws_url", mode="before")
    @classmethod
    def _ws_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value.startswith(("ws://", "wss://")):
                raise PydanticCustomError("url_scheme", "expected a ws:// or wss:// URL")
        return value

    @field_validator("sync_all_symbols_cron", "sync_daily_data_cron", mode="before")
    @classmethod
    def _cron(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = " ".join(value.split())
            fields = value.split(" ")
            if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
                raise PydanticCustomError(
                    "cron", "is not a cron expression of 5 fields (minute hour day month weekday)")
        return value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _password_with_username(self) -> "Settings":
        if self.tradingview_username and not self.tradingview_password:
            raise PydanticCustomError("config", "TRADINGVIEW_USERNAME is set but TRADINGVIEW_PASSWORD is not")
        return self

    @model_validator(mode="after")
    def _replica_index_below_count(self) -> "Settings":
        if self.streamer_replica_index >= self.streamer_replica_count:
            raise PydanticCustomError(
                "config", "STREAMER_REPLICA_INDEX={index} must be below STREAMER_REPLICA_COUNT={count} "
                "(replicas are numbered 0..{last})",
                {"index": self.streamer_replica_index, "count": self.streamer_replica_count,
                 "last": self.streamer_replica_count - 1})
        return self

    @property
    def bar_store_path(self) -> Path:
        return self.data_dir / "bars.sqlite3"

    @property
    def tick_log_dir(self) -> Path:
        return self.data_dir / "ticks"

    @property
    def live_cache_path(self) -> Path:
        return self.data_dir / "live.sqlite3"

    def redacted(self) -> dict:
        """Settings safe to log or print (secrets as ``**********``)."""
        return {name: str(getattr(self, name)) for name in type(self).model_fields}


def _server_url(value: Any, *schemes: str) -> Any:
    if not isinstance(value, str):
        return value
    value = value.strip()
    if not any(value.startswith(s + "://") for s in schemes):
        # only the scheme is shown: the rest of a URL may carry a user and a password
        scheme = value.split("://", 1)[0] if "://" in value else "(none)"
        raise PydanticCustomError(
            "url_scheme", "has scheme {scheme}; expected {expected}://",
            {"scheme": repr(scheme[:20]), "expected": " or ".join(schemes)})
    problem = url_problem(value)
    if problem:
        raise PydanticCustomError("url", "{problem} (in {url})",
                                  {"problem": problem, "url": repr(redact_url(value))})
    return value


def redact_url(url: str) -> str:
    """``url`` safe to print: the user and password become ``***`` and the query (which may
    carry a password) is dropped; scheme, hosts and path stay, so the message still says
    which server was meant. Never longer than 200 characters."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(a value without a scheme, not shown)"
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    user = "***@" if "@" in netloc else ""
    hosts = netloc.rsplit("@", 1)[-1]
    # a port that is not a number may be a password typed without its user@ part
    netloc = user + ",".join(name + (f":{port}" if port.isdigit() else ":***") if port is not None else name
                             for name, port in map(_split_host, hosts.split(",")))
    shown = f"{scheme}://{netloc}{slash}{path}"
    return shown if len(shown) <= 200 else shown[:197] + "..."


def url_problem(url: str) -> str | None:
    """What makes a mongodb:// or redis:// URL unusable, in words that name the bad part (never
    the user or password), or None. Checked here so a typo is a setting error at start, not a
    driver's traceback or a silent default (redis-py reads db 'notadb' as db 0)."""
    scheme, _, rest = url.partition("://")
    bad = next((ch for ch in url if ch.isspace() or not ch.isprintable()), None)
    if bad is not None:
        return f"contains whitespace or a control character ({bad!r})"
    if scheme == "unix":
        return None if rest.split("?", 1)[0] else "has no socket path"
    netloc, _, tail = rest.partition("/")
    netloc, _, query_in_netloc = netloc.partition("?")
    path, _, query = tail.partition("?")
    query = query or query_in_netloc
    hosts = netloc.rsplit("@", 1)[1] if "@" in netloc else netloc
    if not hosts:
        return "has no host"
    for host in hosts.split(",") if scheme.startswith("mongodb") else [hosts]:
        name, port = _split_host(host)
        if not name:
            return f"has an empty host in {hosts!r}"
        if port is not None:
            if scheme == "mongodb+srv":
                return f"names port {port!r}; a mongodb+srv:// URL takes no port"
            if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                # without a user@ part, "u:secret" parses as host u, port secret: name the
                # port only when it cannot be a password
                hostlike = "@" in netloc or "." in name or name == "localhost" or port.isdigit()
                shown = repr(port[:20]) if hostlike else "(not shown: it may be a password)"
                return f"has port {shown}; expected a number in 1..65535"
    if scheme.startswith("redis"):
        db = path.strip("/") or None
        for key, _, val in (part.partition("=") for part in query.split("&") if part):
            if key == "db":
                db = val
        if db is not None and not (db.isascii() and db.isdigit()):
            return f"has database {db[:20]!r}; expected a number such as /0"
    return None


def _split_host(host: str) -> tuple[str, str | None]:
    if host.startswith("["):  # [IPv6]:port
        end = host.find("]")
        if end < 0:
            return "", None
        rest = host[end + 1:]
        return host[1:end], (rest[1:] if rest.startswith(":") else None)
    name, sep, port = host.rpartition(":")
    return (name, port) if sep else (host, None)


_VAR_OF_FIELD = {name: f.validation_alias for name, f in Settings.model_fields.items()}
# a secret's value never appears in an error, not even the part a validator did not like
_SECRET_VARS = {var for name, var in _VAR_OF_FIELD.items()
                if SecretStr in get_args(Settings.model_fields[name].annotation)}
ENV_VARS = tuple(_VAR_OF_FIELD.values())


def load_settings(env: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> Settings:
    """Settings from ``.env`` (in the working directory, or ``dotenv_path``) overlaid by ``env``
    (default ``os.environ``). Empty values count as unset. Raises ConfigError naming the bad
    variable and its value (never a secret's)."""
    path = dotenv_path if dotenv_path is not None else Path.cwd() / ".env"
    _reject_unknown(os.environ if env is None else env, "the environment")
    if path.is_file():
        from dotenv import dotenv_values

        _reject_unknown(dotenv_values(path), str(path))
    token = _ENVIRON.set(None if env is None else dict(env))
    try:
        return Settings(_env_file=path if path.is_file() else None)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error) for error in exc.errors())) from None
    finally:
        _ENVIRON.reset(token)


# Variables in these namespaces are ours: one we do not know is a typo or a setting that does not
# exist, and taking it silently would leave the default in force while the operator thinks
# otherwise. (POCKETQUANT_TEST_* belongs to the test suite.)
_OWN_PREFIXES = ("STREAMER_", "TRADINGVIEW_", "SYNC_", "POCKETQUANT_")
_NOT_SETTINGS = ("POCKETQUANT_TEST_",)


def _reject_unknown(environ: Mapping[str, str | None], where: str) -> None:
    unknown = sorted(k for k in environ if k.startswith(_OWN_PREFIXES) and k not in ENV_VARS
                     and not k.startswith(_NOT_SETTINGS))
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, ENV_VARS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    more = f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])})" if len(unknown) > 1 else ""
    raise ConfigError(f"{name[:80]} (in {where}) is not a PocketQuant setting{more}; {hint}"
                      "every setting is listed in .env.example")


_REASONS = {
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "float_parsing": "is not a number",
    "finite_number": "is not a finite number",
    "bool_parsing": "is not true or false",
}


def _describe(error: dict) -> str:
    """One ConfigError clause: ``VAR='value': reason``; a secret's value is never shown."""
    loc = error.get("loc") or ()
    var = _VAR_OF_FIELD.get(loc[0], loc[0]) if loc else None
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if var is None:
        return error["msg"]
    if kind in _REASONS:
        reason = _REASONS[kind]
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        reason = _range_reason(var)
    elif kind == "literal_error":
        reason = f"expected one of {ctx.get('expected', '').replace(' or ', ', ')}".replace("'", "")
    else:
        reason = error["msg"]
    if var in _SECRET_VARS:
        return f"{var} {reason}"
    return f"{var}={_shown(error.get('input'))}: {reason}"


def _shown(value: Any) -> str:
    # a URL's user and password are masked even in settings that are not secrets
    return repr(_USERINFO.sub(r"\1***@", value if isinstance(value, str) else str(value)))


_USERINFO = re.compile(r"(://)[^/@\s]*@")


def _range_reason(var: str) -> str:
    name = next(n for n, v in _VAR_OF_FIELD.items() if v == var)
    field = Settings.model_fields[name]
    bounds = {key: getattr(meta, key) for meta in field.metadata
              for key in ("gt", "ge", "le") if getattr(meta, key, None) is not None}
    if var == "STREAMER_HEALTH_PORT":
        return "is not a TCP port (0-65535; 0 = any free port)"
    if field.annotation is int:
        low = bounds["gt"] + 1 if "gt" in bounds else bounds["ge"]
        return f"must be an integer in {low}..{bounds['le']}"
    low = f"({bounds['gt']:g}" if "gt" in bounds else f"[{bounds['ge']:g}"
    return f"must be a number of seconds in {low}, {bounds['le']:g}]"

"""All configuration, from the environment and ``.env`` (environment wins).

Every setting is listed in ``.env.example`` with its default and meaning. Unset server URLs
mean embedded backends. Secrets are held in ``Secret`` so they never print or log.
"""

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from dotenv import dotenv_values

from pocketquant_pipelines.errors import ConfigError

DEFAULT_TV_WS_URL = "wss://data.tradingview.com/socket.io/websocket"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Secret(str):
    """A str whose repr/str hide the value; use ``.reveal()`` where it must be sent."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def __str__(self) -> str:
        return "***" if self else ""

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    # storage
    mongodb_url: Secret | None = None
    mongodb_database: str = "pocketquant"
    redis_url: Secret | None = None
    data_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "data")
    # logging
    log_format: str = "console"  # console | json
    log_level: str = "INFO"
    # TradingView
    tradingview_ws_url: str = DEFAULT_TV_WS_URL
    tradingview_auth_token: Secret | None = None
    tradingview_username: str | None = None
    tradingview_password: Secret | None = None
    tradingview_max_connections: int = 2
    tradingview_concurrency: int = 4
    tradingview_request_timeout_s: float = 30.0
    tradingview_heartbeat_timeout_s: float = 30.0  # 3x the server's 10 s heartbeat
    # sync
    sync_default_bars: int = 500
    sync_first_bars: int = 5000
    sync_overlap_bars: int = 2
    # clock sanity: ticks and bars dated beyond now + this, or before the epoch, are rejected
    clock_skew_s: float = 300.0
    # streamer
    streamer_health_port: int = 8765
    streamer_cache_flush_ms: int = 250
    streamer_store_batch_ms: int = 1000
    streamer_registry_poll_s: float = 5.0

    @property
    def bar_store_path(self) -> Path:
        return self.data_dir / "bars.sqlite3"

    @property
    def live_cache_path(self) -> Path:
        return self.data_dir / "live.sqlite3"

    @property
    def uses_simulator_hint(self) -> bool:
        return not self.tradingview_ws_url.startswith("wss://") or "tradingview.com" not in self.tradingview_ws_url

    def redacted(self) -> dict:
        """Settings safe to log or print."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


# env var name -> (field name, parser)
def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be > 0")
    return value


def _port(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value > 65535:
        raise ConfigError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return value


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be > 0")
    return value


def _skew_seconds(name: str, raw: str) -> float:
    value = _positive_float(name, raw)
    if not value <= 86_400:
        raise ConfigError(f"{name}={raw!r} must be a number of seconds in (0, 86400]")
    return value


def _choice(*allowed: str):
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        canon = {a.lower(): a for a in allowed}
        if value.lower() not in canon:
            raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(allowed)}")
        return canon[value.lower()]
    return parse


def _url(*schemes: str):
    def parse(name: str, raw: str) -> Secret:
        value = raw.strip()
        if not any(value.startswith(s + "://") for s in schemes):
            # never echo the whole URL: it may carry a password
            scheme = value.split("://", 1)[0] if "://" in value else value[:12]
            raise ConfigError(f"{name} has scheme {scheme!r}; expected {' or '.join(schemes)}://")
        return Secret(value)
    return parse


def _ws_url(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("ws://", "wss://")):
        raise ConfigError(f"{name}={raw!r}: expected a ws:// or wss:// URL")
    return value


_ENV = {
    "MONGODB_URL": ("mongodb_url", _url("mongodb", "mongodb+srv")),
    "MONGODB_DATABASE": ("mongodb_database", lambda n, r: r.strip()),
    "REDIS_URL": ("redis_url", _url("redis", "rediss", "unix")),
    "POCKETQUANT_DATA_DIR": ("data_dir", lambda n, r: Path(r).expanduser().resolve()),
    "LOG_FORMAT": ("log_format", _choice("console", "json")),
    "LOG_LEVEL": ("log_level", lambda n, r: _choice("DEBUG", "INFO", "WARNING", "ERROR")(n, r).upper()),
    "TRADINGVIEW_WS_URL": ("tradingview_ws_url", _ws_url),
    "TRADINGVIEW_AUTH_TOKEN": ("tradingview_auth_token", lambda n, r: Secret(r.strip())),
    "TRADINGVIEW_USERNAME": ("tradingview_username", lambda n, r: r.strip()),
    "TRADINGVIEW_PASSWORD": ("tradingview_password", lambda n, r: Secret(r)),
    "TRADINGVIEW_MAX_CONNECTIONS": ("tradingview_max_connections", _positive_int),
    "TRADINGVIEW_CONCURRENCY": ("tradingview_concurrency", _positive_int),
    "TRADINGVIEW_REQUEST_TIMEOUT_S": ("tradingview_request_timeout_s", _positive_float),
    "TRADINGVIEW_HEARTBEAT_TIMEOUT_S": ("tradingview_heartbeat_timeout_s", _positive_float),
    "SYNC_DEFAULT_BARS": ("sync_default_bars", _positive_int),
    "SYNC_FIRST_BARS": ("sync_first_bars", _positive_int),
    "SYNC_OVERLAP_BARS": ("sync_overlap_bars", _positive_int),
    "POCKETQUANT_CLOCK_SKEW_S": ("clock_skew_s", _skew_seconds),
    "STREAMER_HEALTH_PORT": ("streamer_health_port", _port),
    "STREAMER_CACHE_FLUSH_MS": ("streamer_cache_flush_ms", _positive_int),
    "STREAMER_STORE_BATCH_MS": ("streamer_store_batch_ms", _positive_int),
    "STREAMER_REGISTRY_POLL_S": ("streamer_registry_poll_s", _positive_float),
}
ENV_VARS = tuple(_ENV)


def load_settings(env: dict[str, str] | None = None, dotenv_path: Path | None = None) -> Settings:
    """Settings from ``.env`` (in the working directory, or ``dotenv_path``) overlaid by ``env``
    (default ``os.environ``). Empty values count as unset. Raises ConfigError naming the bad
    variable."""
    merged: dict[str, str] = {}
    path = dotenv_path if dotenv_path is not None else Path.cwd() / ".env"
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ if env is None else env)
    kwargs = {}
    for var, (attr, parse) in _ENV.items():
        raw = merged.get(var)
        if raw is None or raw.strip() == "":
            continue
        kwargs[attr] = parse(var, raw)
    settings = Settings(**kwargs)
    if settings.tradingview_username and not settings.tradingview_password:
        raise ConfigError("TRADINGVIEW_USERNAME is set but TRADINGVIEW_PASSWORD is not")
    return settings

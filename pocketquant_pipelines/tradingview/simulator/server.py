"""A local WebSocket server speaking TradingView's data protocol from the SERVER side.

It behaves like data.tradingview.com as captured in shared/tradingview-protocol.md (§7 is the
checklist), not like our client expects: hello first, heartbeats every ``heartbeat_s`` that
must be echoed, several frames packed per WebSocket message, session ids chosen by the
client, errors exactly as observed (``protocol_error`` closes the socket, ``critical_error``
does not, an unknown symbol never gets ``series_completed``), non-ASCII text sent raw with
LEN counted in UTF-16 units.

Data comes from :class:`SyntheticMarket`; time is simulated
(``sim_now = sim_start + (wall_now - wall_start) * speed``); faults come from
:class:`FaultConfig`. docs/simulator.md describes the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_end, bar_starts_between
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch
from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame
from pocketquant_pipelines.tradingview.simulator.faults import FaultConfig, ServerStats
from pocketquant_pipelines.tradingview.simulator.market import (
    BarArrays,
    SymbolSpec,
    SyntheticMarket,
    _SymbolModel,
)
from pocketquant_pipelines.tradingview.simulator.quote_feed import QuoteFeed, filter_fields

log = get_logger()

ANONYMOUS_TOKENS = frozenset({"unauthorized_user_token", "widget_user_token"})
ANONYMOUS_DEPTH = 5000
PAID_DEPTH = 20000
NODE = "sim1-charts-free-1-tvbs-sim01-1"
_MAX_QUEUED_MESSAGES = 32  # backpressure: no new live data while this many messages wait
RELEASE = "release_209-23"

# Resolutions a free account may request, beyond our 13 intervals' own strings.
_STANDARD = {
    "1": Interval.M1, "3": Interval.M3, "5": Interval.M5, "15": Interval.M15, "30": Interval.M30,
    "45": Interval.M45, "60": Interval.H1, "120": Interval.H2, "180": Interval.H3, "240": Interval.H4,
    "1H": Interval.H1, "2H": Interval.H2, "3H": Interval.H3, "4H": Interval.H4,
    "D": Interval.D1, "1D": Interval.D1, "W": Interval.W1, "1W": Interval.W1,
    "M": Interval.MN1, "1M": Interval.MN1,
}
_CUSTOM = re.compile(r"\d+|\d+[HDWM]")   # well-formed but not a standard free resolution
_SECONDS = re.compile(r"\d+S")
_TICKS = re.compile(r"\d+T")


def _is_heartbeat(frame: str) -> bool:
    return "~m~~h~" in frame[:16]


def _is_malformed(frame: str) -> bool:
    return len(frame) < 120 and "qs_broken" in frame


def _json(obj: Any) -> str:
    # Raw UTF-8 text, as the real server sends it (the codec's LEN counts UTF-16 units).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _args_text(params: list) -> str:
    """How the server echoes bad arguments: ``"[sds_1, s1, sds_sym_1, s1, 1, ]"``."""
    return "[" + ", ".join("" if p == "" else (p if isinstance(p, str) else _json(p)) for p in params) + "]"


# ---------------------------------------------------------------------------------- clock


class SimClock:
    """Simulated time: ``sim_start + (wall - wall_start) * speed``. Thread-safe reads."""

    def __init__(self, sim_start: datetime | None = None, speed: float = 1.0):
        if not isinstance(speed, (int, float)) or not speed > 0 or not math.isfinite(speed):
            raise InvalidInputError(f"speed {speed!r} must be a positive number")
        start = datetime.now(UTC) if sim_start is None else ensure_utc(sim_start, "sim_start")
        self._sim0 = start.timestamp()
        self._wall0 = time.monotonic()
        self._speed = float(speed)
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now_epoch(self) -> float:
        with self._lock:
            return self._sim0 + (time.monotonic() - self._wall0) * self._speed

    def now(self) -> datetime:
        return from_epoch(self.now_epoch())

    def set_speed(self, speed: float) -> None:
        if not isinstance(speed, (int, float)) or not speed > 0:
            raise InvalidInputError(f"speed {speed!r} must be a positive number")
        with self._lock:
            wall = time.monotonic()
            self._sim0 += (wall - self._wall0) * self._speed
            self._wall0 = wall
            self._speed = float(speed)

    def jump(self, seconds: float) -> None:
        """Move simulated time forward (never backward: history must stay consistent)."""
        if seconds < 0:
            raise InvalidInputError(f"cannot jump back in time ({seconds!r} s)")
        with self._lock:
            self._sim0 += seconds


# ---------------------------------------------------------------------------------- state


@dataclass
class _Resolved:
    ref: str
    descriptor: str
    model: _SymbolModel | None
    sent: bool = False


@dataclass
class _Series:
    sid: str
    turnaround: str
    ref: str
    model: _SymbolModel
    interval: Interval
    requested: int
    loaded: int = 0
    oldest: int | None = None       # epoch of the oldest bar sent
    last_time: int | None = None    # epoch of the newest bar sent
    last_index: int = -1
    cursor: int = 0                 # visible time up to which bars have been sent
    completed: bool = False
    live: bool = True


@dataclass
class _ChartSession:
    cs: str
    timezone: str = "Etc/UTC"
    symbols: dict[str, _Resolved] = field(default_factory=dict)
    series: dict[str, _Series] = field(default_factory=dict)


@dataclass
class _QuoteSub:
    name: str                      # exactly the string subscribed (echoed in "n")
    model: _SymbolModel
    feed: QuoteFeed


@dataclass
class _QuoteSession:
    qs: str
    fields: set[str] | None = None
    subs: dict[str, _QuoteSub] = field(default_factory=dict)
    fast: set[str] = field(default_factory=set)
    hibernated: bool = False


class _Closing(Exception):
    """Stop handling this connection's messages (the socket is being closed)."""


# ---------------------------------------------------------------------------------- connection


class _Connection:
    def __init__(self, server: "SimulatorServer", ws: ServerConnection, number: int):
        self.server = server
        self.ws = ws
        self.number = number
        self.loop = asyncio.get_running_loop()
        self.depth = server.anonymous_depth
        self.charts: dict[str, _ChartSession] = {}
        self.quotes: dict[str, _QuoteSession] = {}
        self.outbox: list[str] = []
        self.flush_handle: asyncio.TimerHandle | None = None
        self.queue: asyncio.Queue[list[str] | None] = asyncio.Queue()
        self.frames_sent = 0
        self.data_frames_since_malformed = 0
        self.malformed_kind = 0
        self.heartbeat_n = 0
        self.pending_heartbeats: dict[int, float] = {}
        self.opened_at = time.monotonic()
        self.closing = False
        self.tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ output

    def now(self) -> float:
        return self.server.clock.now_epoch()

    def stamp(self, method: str, params: list) -> str:
        """A server frame with t / t_ms (simulated server time), as the 2023+ server sends."""
        now = self.now()
        return encode_frame(_json({"m": method, "p": params, "t": int(now), "t_ms": int(now * 1000)}))

    @staticmethod
    def plain(method: str, params: list) -> str:
        return encode_frame(_json({"m": method, "p": params}))

    def emit(self, *frames: str) -> None:
        """Queue frames; everything emitted within ``pack_window_s`` goes out in one message."""
        if not frames or self.closing:
            return
        self.outbox.extend(frames)
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_later(self.server.pack_window_s, self.flush)

    def flush(self) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        frames, self.outbox = self.outbox, []
        limit = self.server.max_frames_per_message
        for i in range(0, len(frames), limit):
            self.queue.put_nowait(frames[i:i + limit])

    def emit_alone(self, frame: str) -> None:
        """A frame in a message of its own (heartbeats always arrive alone)."""
        self.flush()
        self.queue.put_nowait([frame])

    def _malformed(self) -> str:
        self.malformed_kind ^= 1
        if self.malformed_kind:
            body = '{"m":"qsd","p":["qs_broken",{"n":"X","s":"ok","v":{"lp":1}}]}'
            return f"~m~{len(body) + 7}~m~{body}"  # wrong LEN
        body = '{"m":"qsd","p":["qs_broken",{"n":"X","s":"ok","v":{"lp":'
        return encode_frame(body)  # right LEN, broken JSON

    async def writer(self) -> None:
        """The only task that sends: applies the output faults, keeps message order."""
        faults = self.server.faults
        stats = self.server.stats
        while True:
            frames = await self.queue.get()
            if frames is None:
                return
            if faults.silent:
                continue
            every = faults.malformed_every
            real = sum(1 for f in frames if not _is_malformed(f))
            if every and every > 0:
                out = []
                for f in frames:
                    out.append(f)
                    if not _is_heartbeat(f):
                        self.data_frames_since_malformed += 1
                        if self.data_frames_since_malformed >= every:
                            self.data_frames_since_malformed = 0
                            out.append(self._malformed())
                            stats.malformed_sent += 1
                frames = out
            limit = faults.drop_after_frames
            drop = False
            if limit is not None and self.frames_sent + real >= limit:
                keep, kept_real = [], 0
                for f in frames:
                    if self.frames_sent + kept_real >= limit:
                        break
                    keep.append(f)
                    if not _is_malformed(f):
                        kept_real += 1
                frames, real, drop = keep, kept_real, True
            if frames:
                try:
                    await self.ws.send("".join(frames))
                except ConnectionClosed:
                    return
                self.frames_sent += real
                stats.frames_sent += real
                stats.messages_sent += 1
                if len(frames) > 1:
                    stats.packed_messages += 1
            if drop:
                self.abort("drop_after_frames")
                return

    def send_malformed_now(self) -> None:
        self.server.stats.malformed_sent += 1
        self.flush()
        self.queue.put_nowait([self._malformed()])

    def abort(self, why: str) -> None:
        """Drop the TCP connection without a close frame (what a network failure looks like)."""
        if self.closing:
            return
        self.closing = True
        self.server.stats.dropped += 1
        log.info("simulator_connection_dropped", connection=self.number, reason=why)
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.flush()
        self.queue.put_nowait(None)
        self.closing = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), timeout=2)
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    async def _drain(self) -> None:
        for task in self.tasks:
            if task.get_name().endswith("writer"):
                await task

    # ------------------------------------------------------------------ background loops

    async def heartbeats(self) -> None:
        server = self.server
        while not self.closing:
            await asyncio.sleep(server.heartbeat_s)
            if self.closing:
                return
            if server.faults.silent:
                self.pending_heartbeats.clear()  # a silent server expects nothing back
                continue
            now = time.monotonic()
            if server.faults.check_heartbeats and self.pending_heartbeats:
                oldest = min(self.pending_heartbeats.values())
                if now - oldest > server.heartbeat_grace_s:
                    server.stats.heartbeat_timeouts += 1
                    log.info("simulator_heartbeat_timeout", connection=self.number)
                    await self.close(1000, "heartbeat timeout")
                    return
            self.heartbeat_n += 1
            self.pending_heartbeats[self.heartbeat_n] = now
            server.stats.heartbeats_sent += 1
            self.emit_alone(encode_frame(f"~h~{self.heartbeat_n}"))

    async def pump(self) -> None:
        """Live data: du for completed series, partial qsd for quote symbols."""
        server = self.server
        while not self.closing:
            await asyncio.sleep(server.pump_interval_s)
            every = server.faults.drop_every_s
            if every is not None and time.monotonic() - self.opened_at >= every:
                self.abort("drop_every_s")
                return
            if self.queue.qsize() > _MAX_QUEUED_MESSAGES:
                # A client slower than simulated time: let it catch up. Cursors do not move,
                # so nothing is skipped; the live data just lags behind sim_now.
                continue
            try:
                self._pump_once()
            except Exception:  # a bug here must not kill the connection silently
                log.exception("simulator_pump_failed", connection=self.number)

    def _pump_once(self) -> None:
        now = self.now()
        frames: list[str] = []
        for chart in list(self.charts.values()):
            for series in list(chart.series.values()):
                if series.completed and series.live:
                    frame = self._du(chart, series, now)
                    if frame:
                        frames.append(frame)
        updates: list[tuple[int, int, str]] = []
        order = 0
        for quote in list(self.quotes.values()):
            for sub in list(quote.subs.values()):
                if quote.hibernated and sub.name not in quote.fast:
                    continue
                visible = int(now) - sub.model.spec.delay_s
                for t, v in sub.feed.advance(visible):
                    v = filter_fields(v, quote.fields)
                    if v:
                        order += 1
                        updates.append((t, order, self.plain("qsd", [quote.qs, {"n": sub.name, "s": "ok", "v": v}])))
        updates.sort()
        frames.extend(f for _, _, f in updates)
        if frames:
            self.emit(*frames)

    def _du(self, chart: _ChartSession, series: _Series, now: float) -> str | None:
        model = series.model
        visible = math.floor(now) - model.spec.delay_s
        if visible <= series.cursor or series.last_time is None:
            return None
        located_new = model.last_tick_before(visible)
        located_old = model.last_tick_before(series.cursor)
        series.cursor = visible
        if located_new == located_old:
            return None
        bars = model.bars(series.interval, visible, start=series.last_time)
        if not len(bars):
            return None
        entries = []
        index = series.last_index
        for k, v in enumerate(_bar_values(model.spec, bars)):
            t = int(bars.times[k])
            if t > series.last_time:
                index += 1
                series.loaded += 1
            entries.append({"i": index, "v": v})
            series.last_time = t
        series.last_index = index
        close = int(bar_end(from_epoch(series.last_time), series.interval, model.session).timestamp())
        return self.plain("du", [chart.cs, {series.sid: {
            "s": entries, "ns": {"d": "", "indexes": "nochange"}, "t": series.turnaround,
            "lbs": {"bar_close_time": close},
        }}])

    # ------------------------------------------------------------------ input

    async def handle(self, message: str | bytes) -> None:
        server = self.server
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError:
                return  # malformed input is ignored, like the real server mostly does
        if server.faults.reply_delay_s > 0:
            await asyncio.sleep(server.faults.reply_delay_s)
        for frame in decode_message(message):
            server.stats.frames_received += 1
            if frame.kind == "heartbeat":
                n = frame.heartbeat_number
                if n is not None and self.pending_heartbeats.pop(n, None) is not None:
                    server.stats.heartbeats_echoed += 1
                continue
            if frame.kind != "message" or frame.method is None:
                continue
            server.stats.commands[frame.method] += 1
            handler = getattr(self, "cmd_" + frame.method, None)
            if handler is None:
                continue  # unknown methods are ignored silently
            try:
                result = handler(frame.params)
                if asyncio.iscoroutine(result):
                    await result
            except _Closing:
                raise
            except Exception:  # a simulator bug must show up in the log, not kill the socket
                log.exception("simulator_command_failed", connection=self.number, method=frame.method)

    async def protocol_error(self, text: str) -> None:
        self.server.stats.protocol_errors += 1
        self.emit(self.plain("protocol_error", [text]))
        await self.close(1000, "protocol error")
        raise _Closing

    def critical_error(self, session: str, name: str, detail: str) -> None:
        self.server.stats.critical_errors += 1
        self.emit(self.stamp("critical_error", [session, name, detail]))

    # ------------------------------------------------------------------ auth & misc

    async def cmd_set_auth_token(self, p: list) -> None:
        token = p[0] if p else None
        server = self.server
        if isinstance(token, str) and token in server.paid_tokens:
            self.depth = server.paid_depth
        elif isinstance(token, str) and (token in ANONYMOUS_TOKENS or token in server.accepted_tokens):
            self.depth = server.anonymous_depth
        else:
            await self.protocol_error("bad auth token")

    def cmd_set_locale(self, p: list) -> None:
        pass

    def cmd_set_data_quality(self, p: list) -> None:
        pass

    # ------------------------------------------------------------------ chart session

    async def _chart(self, method: str, p: list) -> _ChartSession:
        cs = p[0] if p and isinstance(p[0], str) else None
        chart = self.charts.get(cs) if cs else None
        if chart is None:
            await self.protocol_error(f'{{unknown_session_id,<<"{method}">>,<<"{cs}">>}}')
        return chart  # type: ignore[return-value]

    def cmd_chart_create_session(self, p: list) -> None:
        if p and isinstance(p[0], str) and p[0]:
            self.charts[p[0]] = _ChartSession(p[0])

    def cmd_chart_delete_session(self, p: list) -> None:
        if p and isinstance(p[0], str):
            self.charts.pop(p[0], None)

    async def cmd_switch_timezone(self, p: list) -> None:
        chart = await self._chart("switch_timezone", p)
        tz = p[1] if len(p) > 1 else None
        if tz == "exchange" or _valid_zone(tz):
            chart.timezone = tz
        else:
            self.critical_error(chart.cs, "invalid timezone", f'method: switch_timezone. args: "[{tz}]"')

    async def cmd_resolve_symbol(self, p: list) -> None:
        chart = await self._chart("resolve_symbol", p)
        if len(p) < 3 or not isinstance(p[1], str) or not isinstance(p[2], str):
            self.critical_error(chart.cs, "invalid parameters", f'method: resolve_symbol. args: "{_args_text(p[1:])}"')
            return
        ref, descriptor = p[1], p[2]
        resolved = _Resolved(ref, descriptor, self.server.lookup(descriptor))
        chart.symbols[ref] = resolved
        # The real server answers a moment later; a create_series arriving meanwhile gets its
        # series_loading out first (observed order: series_loading, symbol_resolved).
        self.loop.call_later(self.server.resolve_delay_s, self._send_resolution, chart, resolved)

    def _send_resolution(self, chart: _ChartSession, resolved: _Resolved) -> None:
        if resolved.sent or self.closing or self.charts.get(chart.cs) is not chart:
            return
        resolved.sent = True
        if resolved.model is not None:
            self.emit(self.stamp("symbol_resolved", [chart.cs, resolved.ref, symbol_info(resolved.model.spec)]))
        else:
            self.emit(self.stamp("symbol_error", [chart.cs, resolved.ref, "invalid symbol"]))

    async def cmd_create_series(self, p: list) -> None:
        chart = await self._chart("create_series", p)
        await self._load_series(chart, p, "create_series")

    async def cmd_modify_series(self, p: list) -> None:
        chart = await self._chart("modify_series", p)
        old = chart.series.get(p[1]) if len(p) > 1 and isinstance(p[1], str) else None
        if old is None:
            self.critical_error(chart.cs, "invalid parameters", f'method: modify_series. args: "{_args_text(p[1:])}"')
            return
        params = list(p[:5]) + [old.requested] + ([p[5]] if len(p) > 5 and p[5] != "" else [])
        await self._load_series(chart, params, "modify_series")

    def cmd_remove_series(self, p: list) -> None:
        chart = self.charts.get(p[0]) if p and isinstance(p[0], str) else None
        if chart is not None and len(p) > 1:
            chart.series.pop(p[1], None)

    async def _load_series(self, chart: _ChartSession, p: list, method: str) -> None:
        cs = chart.cs
        bad = f'method: {method}. args: "{_args_text(p[1:])}"'
        if len(p) < 6 or not all(isinstance(x, str) for x in p[1:5]):
            self.critical_error(cs, "invalid parameters", bad)
            return
        sid, turnaround, ref, resolution = p[1], p[2], p[3], p[4]
        interval = _STANDARD.get(resolution)
        if interval is None:
            if _SECONDS.fullmatch(resolution) or _TICKS.fullmatch(resolution):
                reason = "seconds_not_entitled" if resolution.endswith("S") else "custom_resolution"
            elif _CUSTOM.fullmatch(resolution):
                reason = "custom_resolution"
            else:
                self.critical_error(cs, "invalid parameters", bad)
                return
            self.emit(self.stamp("series_loading", [cs, sid, turnaround]),
                      self.stamp("series_error", [cs, sid, turnaround, reason]))
            return
        window = _parse_window(p[5], p[6] if len(p) > 6 else "")
        if window is None:
            self.critical_error(cs, "invalid parameters", bad)
            return
        resolved = chart.symbols.get(ref)
        self.emit(self.stamp("series_loading", [cs, sid, turnaround]))
        if resolved is None or resolved.model is None:
            if resolved is not None:
                self._send_resolution(chart, resolved)
            chart.series.pop(sid, None)
            self.emit(self.stamp("series_error", [cs, sid, turnaround, "resolve error", f"{NODE}@{NODE}"]))
            return
        self._send_resolution(chart, resolved)
        model = resolved.model
        count, end_at, start_at = window
        visible = math.floor(self.now()) - model.spec.delay_s
        depth = self.depth
        requested = count if count is not None else depth
        series = _Series(sid, turnaround, ref, model, interval, requested)
        chart.series[sid] = series
        if self.server.empty_first_update:
            # RS events.json: the first timescale_update of a new series can be empty.
            self.emit(self.stamp("timescale_update", [
                cs, {sid: {"s": [], "ns": {"d": "", "indexes": []}, "t": turnaround}},
                {"index": 0, "zoffset": 0, "changes": [], "marks": [], "index_diff": []},
            ]))
        bars = await asyncio.to_thread(
            _window_bars, model, interval, visible, depth, min(requested, depth), end_at, start_at
        )
        if chart.series.get(sid) is not series or self.closing:
            return  # replaced or removed while loading
        series.loaded = len(bars)
        series.cursor = visible
        series.live = end_at is None or end_at >= visible
        if len(bars):
            series.oldest = int(bars.times[0])
            series.last_time = int(bars.times[-1])
            series.last_index = len(bars) - 1
        else:
            series.oldest = series.last_time = visible
        self.emit(
            self.stamp("timescale_update", [cs, _series_payload(series, bars, 0), _timescale(model, bars, 0, interval)]),
            # Sent after the bars in 2023 captures; clients must simply ignore it.
            self.plain("series_timeframe", [cs, sid, turnaround, 0, max(0, len(bars) - 1), "LASTSESSION", True]),
            self.stamp("series_completed", [cs, sid, model.spec.update_mode, turnaround, {"rt_update_period": 5}]),
        )
        series.completed = True

    async def cmd_request_more_data(self, p: list) -> None:
        chart = await self._chart("request_more_data", p)
        series = chart.series.get(p[1]) if len(p) > 2 and isinstance(p[1], str) else None
        n = p[2] if len(p) > 2 else None
        if series is None or not isinstance(n, int) or isinstance(n, bool) or n <= 0 or not series.completed:
            self.critical_error(chart.cs, "invalid parameters", f'method: request_more_data. args: "{_args_text(p[1:])}"')
            return
        room = self.depth - series.loaded
        want = min(n, room)
        model = series.model
        if want > 0 and series.oldest is not None:
            bars = await asyncio.to_thread(model.bars, series.interval, series.oldest, want)
        else:
            bars = BarArrays(*(np.empty(0, dtype=np.int64) for _ in range(6)))
        got = len(bars)
        if got:
            series.oldest = int(bars.times[0])
            series.loaded += got
            series.last_index += got  # older bars take indexes 0..got-1; the rest shift
        done = got < want or series.loaded >= self.depth
        extra: dict[str, Any] = {"rt_update_period": 5}
        if done:
            extra["data_completed"] = "end"
        self.emit(
            self.stamp("timescale_update", [chart.cs, _series_payload(series, bars, 0),
                                            _timescale(model, bars, 0, series.interval)]),
            self.stamp("series_completed", [chart.cs, series.sid, model.spec.update_mode, series.turnaround, extra]),
        )

    async def cmd_request_more_tickmarks(self, p: list) -> None:
        """Future time-scale marks: a timescale_update whose p[1] is ``{}`` (DT-2019)."""
        chart = await self._chart("request_more_tickmarks", p)
        series = chart.series.get(p[1]) if len(p) > 2 and isinstance(p[1], str) else None
        n = p[2] if len(p) > 2 else None
        if series is None or series.last_time is None or not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            return
        model, interval = series.model, series.interval
        after = bar_end(from_epoch(series.last_time), interval, model.session)
        horizon = after + timedelta(seconds=interval.nominal_seconds * (n + 1) * 3) + timedelta(days=10)
        starts = bar_starts_between(after, horizon, interval, model.session)[: min(n, 1000)]
        times = np.asarray([int(t.timestamp()) for t in starts], dtype=np.int64)
        future = BarArrays(times, times, times, times, times, times)
        marks = _timescale(model, future, series.last_index + 1, interval)
        self.emit(self.stamp("timescale_update", [chart.cs, {}, marks]))

    # ------------------------------------------------------------------ quote session

    async def _quote(self, method: str, p: list) -> _QuoteSession:
        qs = p[0] if p and isinstance(p[0], str) else None
        quote = self.quotes.get(qs) if qs else None
        if quote is None:
            await self.protocol_error(f'{{unknown_session_id,<<"{method}">>,<<"{qs}">>}}')
        return quote  # type: ignore[return-value]

    def cmd_quote_create_session(self, p: list) -> None:
        if p and isinstance(p[0], str) and p[0]:
            self.quotes[p[0]] = _QuoteSession(p[0])

    def cmd_quote_delete_session(self, p: list) -> None:
        if p and isinstance(p[0], str):
            self.quotes.pop(p[0], None)

    async def cmd_quote_set_fields(self, p: list) -> None:
        quote = await self._quote("quote_set_fields", p)
        quote.fields = {f for f in p[1:] if isinstance(f, str)}

    async def cmd_quote_add_symbols(self, p: list) -> None:
        quote = await self._quote("quote_add_symbols", p)
        items = p[1:]
        if any(not isinstance(x, str) for x in items):
            # The old {"flags":["force_permission"]} object: the whole command fails, the
            # socket stays open and no symbol is added (issue 0xrushi/tradingview-scraper#25).
            self.critical_error(quote.qs, "invalid_parameters", "quote_add_symbols")
            return
        snapshots, completed = [], []
        now = math.floor(self.now())
        for name in items:
            if name in quote.subs:
                continue
            model = self.server.lookup(name)
            if model is None:
                snapshots.append(self.plain("qsd", [quote.qs, {"n": name, "s": "error", "errmsg": "no_such_symbol", "v": {}}]))
                continue
            feed = QuoteFeed(model)
            v = filter_fields(feed.snapshot(now - model.spec.delay_s), quote.fields)
            quote.subs[name] = _QuoteSub(name, model, feed)
            snapshots.append(self.plain("qsd", [quote.qs, {"n": name, "s": "ok", "v": v}]))
            completed.append(self.plain("quote_completed", [quote.qs, name]))
        self.emit(*snapshots, *completed)

    async def cmd_quote_remove_symbols(self, p: list) -> None:
        quote = await self._quote("quote_remove_symbols", p)
        for name in p[1:]:
            if isinstance(name, str):
                quote.subs.pop(name, None)
                quote.fast.discard(name)

    async def cmd_quote_fast_symbols(self, p: list) -> None:
        quote = await self._quote("quote_fast_symbols", p)
        quote.fast = {name for name in p[1:] if isinstance(name, str)}

    async def cmd_quote_hibernate_all(self, p: list) -> None:
        quote = await self._quote("quote_hibernate_all", p)
        quote.hibernated = True


# ---------------------------------------------------------------------------------- payloads


def _valid_zone(tz: Any) -> bool:
    if not isinstance(tz, str) or not tz or tz.startswith("/") or ".." in tz:
        return False
    try:
        ZoneInfo(tz)
    except Exception:
        return False
    return True


def _parse_window(count: Any, range_text: Any) -> tuple[int | None, int | None, int | None] | None:
    """(count, end, start) from create_series' count_or_range (+ optional range string).

    ``300`` -> latest 300; ``["bar_count", to, n]`` -> n bars before ``to``;
    ``"r,from:to"`` (seconds, or milliseconds when > 1e11) -> bars in [from, to)."""
    if isinstance(range_text, str) and range_text.startswith("r,"):
        span = _parse_range(range_text)
        return None if span is None else (None, span[1], span[0])
    if range_text not in ("", None) and not isinstance(range_text, str):
        return None
    if isinstance(count, bool):
        return None
    if isinstance(count, int):
        return (count, None, None) if count > 0 else None
    if isinstance(count, str) and count.startswith("r,"):
        span = _parse_range(count)
        return None if span is None else (None, span[1], span[0])
    if isinstance(count, list) and len(count) == 3 and count[0] == "bar_count":
        to, n = count[1], count[2]
        if isinstance(to, (int, float)) and isinstance(n, int) and n > 0:
            return n, int(to / 1000 if to > 1e11 else to), None
    return None


def _parse_range(text: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"r,(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)", text)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    if a > 1e11 or b > 1e11:
        a, b = a / 1000, b / 1000
    return (int(a), int(b)) if b > a else None


def _window_bars(model: _SymbolModel, interval: Interval, visible: int, depth: int,
                 count: int, end_at: int | None, start_at: int | None) -> BarArrays:
    """The bars of a create_series request, never older than ``depth`` bars back from the
    latest bar (the plan's max_bars window; older requests simply return fewer bars)."""
    if end_at is None and start_at is None:
        return model.bars(interval, visible, count=count)
    window = model.bars(interval, visible, count=depth)
    if not len(window):
        return window
    end = min(end_at if end_at is not None else visible, visible)
    lo = int(np.searchsorted(window.times, start_at if start_at is not None else -(2**62), side="left"))
    hi = int(np.searchsorted(window.times, end, side="left"))
    if start_at is None:
        lo = max(lo, hi - count)
    return window.slice(lo, hi)


def _bar_values(spec: SymbolSpec, bars: BarArrays) -> list[list[float]]:
    ps = spec.pricescale
    cols = [bars.times.astype(np.float64).tolist(), (bars.open / ps).tolist(), (bars.high / ps).tolist(),
            (bars.low / ps).tolist(), (bars.close / ps).tolist()]
    if spec.has_volume:
        cols.append((bars.volume * spec.volume_unit).astype(np.float64).tolist())
    return [list(row) for row in zip(*cols)]


def _series_payload(series: _Series, bars: BarArrays, first_index: int) -> dict:
    model = series.model
    body: dict[str, Any] = {
        "node": f"{NODE}-runner-1",
        "s": [{"i": first_index + k, "v": v} for k, v in enumerate(_bar_values(model.spec, bars))],
        "ns": {"d": "", "indexes": []},
        "t": series.turnaround,
    }
    if series.last_time is not None and series.loaded:
        close = bar_end(from_epoch(series.last_time), series.interval, model.session)
        body["lbs"] = {"bar_close_time": int(close.timestamp())}
    return {series.sid: body}


def _timescale(model: _SymbolModel, bars: BarArrays, first_index: int, interval: Interval) -> dict:
    """The third timescale_update element: bar times and time-scale marks [weight, t, i].

    Weights as observed (§5.2): 70 first bar of a year, 60 of a month, 50 of a week (Monday),
    40 of a day; intraday 30 on the hour, 22 on a quarter hour, 21 on five minutes, 20 else.
    Daily and longer marks use 00:00 UTC stamps of the exchange-local date."""
    times = bars.times.tolist()
    marks = []
    zone = ZoneInfo(model.spec.timezone)
    prev = None
    intraday = interval.is_intraday
    for k, t in enumerate(times):
        local = datetime.fromtimestamp(t, zone)
        day = local.date()
        if prev is None or day.year != prev.year:
            w = 70
        elif day.month != prev.month:
            w = 60
        elif day.isocalendar()[1] != prev.isocalendar()[1]:
            w = 50
        elif day != prev:
            w = 40
        elif local.minute == 0:
            w = 30
        elif local.minute % 15 == 0:
            w = 22
        elif local.minute % 5 == 0:
            w = 21
        else:
            w = 20
        stamp = t if intraday else int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        marks.append([w, stamp, first_index + k])
        prev = day
    return {"index": first_index, "zoffset": 0, "changes": [float(t) for t in times], "marks": marks, "index_diff": []}


def symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    """The symbol_resolved info object (field shapes from captured frames)."""
    full_name = f"{spec.exchange}_DLY:{spec.code}" if spec.delay_s else spec.symbol
    info: dict[str, Any] = {
        "source2": {"country": spec.country, "description": spec.exchange_name or spec.exchange,
                    "exchange-type": "exchange", "id": spec.exchange, "name": spec.exchange_name or spec.exchange},
        "currency_code": spec.currency,
        "source_id": spec.exchange,
        "subsession_id": "regular",
        "provider_id": "simulator",
        "currency_id": spec.currency,
        "country": spec.country,
        "pro_perm": "",
        "measure": "price",
        "allowed_adjustment": "none",
        "short_description": spec.description,
        "variable_tick_size": "",
        "language": spec.language,
        "name": spec.code,
        "full_name": full_name,
        "pro_name": spec.symbol,
        "base_name": [spec.symbol],
        "description": spec.description,
        "exchange": spec.exchange_name or spec.exchange,
        "pricescale": spec.pricescale,
        "pointvalue": 1.0,
        "minmov": spec.minmov,
        "session": spec.session,
        "session_display": spec.session,
        "subsessions": [{"description": "Regular Trading Hours", "id": "regular", "private": False,
                         "session": spec.session, "session-display": spec.session}],
        "type": spec.type,
        "typespecs": list(spec.typespecs),
        "resolutions": [],
        "has_intraday": True,
        "fractional": False,
        "listed_exchange": spec.exchange,
        "legs": [full_name],
        "is_tradable": spec.type != "index",
        "minmove2": 0,
        "timezone": spec.timezone,
        "aliases": [],
        "alternatives": [],
        "is_replayable": True,
        "has_adjustment": spec.type == "stock",
        "has_extended_hours": False,
        "bar_source": "trade",
        "bar_transform": "none",
        "bar_fillgaps": False,
        "visible_plots_set": "ohlcv" if spec.has_volume else "ohlc",
    }
    if spec.local_description is not None:
        info["local_description"] = spec.local_description
    if spec.delay_s:
        info["delay"] = spec.delay_s
    return info


# ---------------------------------------------------------------------------------- server


class SimulatorServer:
    """The simulator. ``await start()``, use ``url``, ``await stop()``.

    Test hooks: ``faults`` (live switches), ``stats`` (counters), ``clock`` (simulated time),
    ``market`` (the oracle), ``drop_all_connections()``, ``go_silent()``,
    ``send_malformed()``, ``refuse_next()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 42,
        speed: float = 1.0,
        sim_start: datetime | None = None,
        heartbeat_s: float = 10.0,
        symbols: Iterable[SymbolSpec] | None = None,
        faults: FaultConfig | None = None,
        *,
        heartbeat_grace_s: float | None = None,
        accepted_tokens: Iterable[str] = (),
        paid_tokens: Iterable[str] = ("sim_paid_token",),
        anonymous_depth: int = ANONYMOUS_DEPTH,
        paid_depth: int = PAID_DEPTH,
        pump_interval_s: float = 0.1,
        pack_window_s: float = 0.003,
        resolve_delay_s: float = 0.05,
        max_frames_per_message: int = 64,
        delays: dict[str, int] | None = None,
        warm_up: bool = False,
        empty_first_update: bool = False,
    ):
        if not heartbeat_s > 0:
            raise InvalidInputError(f"heartbeat_s {heartbeat_s!r} must be > 0")
        specs = list(symbols) if symbols is not None else None
        if delays:
            from dataclasses import replace

            from pocketquant_pipelines.tradingview.simulator.market import DEFAULT_SYMBOLS

            base = specs if specs is not None else list(DEFAULT_SYMBOLS)
            known = {s.symbol for s in base}
            for name in delays:
                if name not in known:
                    raise InvalidInputError(f"delays: unknown simulator symbol {name!r}")
            specs = [replace(s, delay_s=int(delays[s.symbol])) if s.symbol in delays else s for s in base]
        self.host = host
        self.port = port
        self.market = SyntheticMarket(seed=seed, symbols=specs)
        self.clock = SimClock(sim_start, speed)
        self.heartbeat_s = float(heartbeat_s)
        self.heartbeat_grace_s = float(heartbeat_grace_s) if heartbeat_grace_s is not None else 2 * self.heartbeat_s
        self.faults = faults if faults is not None else FaultConfig()
        self.stats = ServerStats()
        self.accepted_tokens = frozenset(accepted_tokens)
        self.paid_tokens = frozenset(paid_tokens)
        self.anonymous_depth = int(anonymous_depth)
        self.paid_depth = int(paid_depth)
        self.pump_interval_s = float(pump_interval_s)
        self.pack_window_s = float(pack_window_s)
        self.resolve_delay_s = float(resolve_delay_s)
        self.max_frames_per_message = int(max_frames_per_message)
        self.warm_up = bool(warm_up)
        self.empty_first_update = bool(empty_first_update)
        self._warm_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._server = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Connection] = set()
        self._count = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"ws://{self.host}:{self.port}/socket.io/websocket"

    def sim_now(self) -> datetime:
        return self.clock.now()

    async def start(self) -> "SimulatorServer":
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._handler, self.host, self.port,
            process_request=self._process_request,
            max_size=None, ping_interval=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info("simulator_started", url=self.url, seed=self.market.seed, speed=self.clock.speed,
                 sim_now=self.sim_now().isoformat())
        if self.warm_up:
            self._warm_thread = threading.Thread(target=self._warm, name="simulator-warm-up", daemon=True)
            self._warm_thread.start()
        return self

    def _warm(self) -> None:
        """Precompute every symbol's daily summaries (what 1d/1w/1M history needs, the only
        request that touches years of ticks) so the first daily sync is served from cache."""
        for symbol in self.market.symbols:
            if self._stopping.is_set():
                return
            try:
                self.market.warm_up(symbol, self.sim_now())
            except Exception:  # warm-up is an optimisation; a failure shows up on request
                log.exception("simulator_warm_up_failed", symbol=symbol)
        log.info("simulator_warmed_up", symbols=len(self.market.symbols))

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is None:
            return
        for conn in list(self._connections):
            conn.closing = True
            transport = getattr(conn.ws, "transport", None)
            if transport is not None:
                transport.abort()
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None
        log.info("simulator_stopped", port=self.port)

    async def __aenter__(self) -> "SimulatorServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ lookups

    def lookup(self, text: str) -> _SymbolModel | None:
        """A symbol string or ``={json}`` descriptor -> its model, or None if unknown."""
        if not isinstance(text, str):
            return None
        name: Any = text
        if text.startswith("="):
            try:
                desc = json.loads(text[1:])
            except ValueError:
                return None
            name = desc.get("symbol") if isinstance(desc, dict) else None
            if isinstance(name, dict):  # {"symbol": {...}, "type": "BarSetHeikenAshi@..."} wrappers
                name = name.get("symbol")
        if not isinstance(name, str):
            return None
        return self.market._find_model(name)

    # ------------------------------------------------------------------ test hooks

    def _in_loop(self, fn, *args) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def drop_all_connections(self) -> None:
        """Abort every open connection (TCP reset, no close frame)."""
        def go():
            for conn in list(self._connections):
                conn.abort("drop_all_connections")
        self._in_loop(go)

    def go_silent(self, silent: bool = True) -> None:
        self.faults.silent = bool(silent)

    def send_malformed(self) -> None:
        """Send one malformed frame (alternately wrong LEN / broken JSON) on every connection."""
        def go():
            for conn in list(self._connections):
                conn.send_malformed_now()
        self._in_loop(go)

    def refuse_next(self, k: int = 1) -> None:
        """Refuse the next ``k`` upgrade attempts with HTTP 429."""
        self.faults.refuse_connections = int(k)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ websockets plumbing

    def _process_request(self, connection, request):
        if self.faults.refuse_connections > 0:
            self.faults.refuse_connections -= 1
            self.stats.refused += 1
            log.info("simulator_upgrade_refused", status=429)
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        return None

    def _hello(self, conn: _Connection) -> str:
        now = self.clock.now_epoch()
        digest = hashlib.sha1(f"{self.market.seed}".encode()).hexdigest()
        hello = {
            "session_id": f"<0.{4000 + conn.number}.{self.market.seed % 1000}>_sim1-charts-free-1-webchart-{conn.number}@sim1-compute-1_x",
            "timestamp": int(now),
            "timestampMs": int(now * 1000),
            "release": RELEASE,
            "studies_metadata_hash": digest,
            "auth_scheme_vsn": 2,
            "protocol": "json",
            "via": f"{self.host}:{self.port}",
            "javastudies": ["3.66"],
        }
        return encode_frame(_json(hello))

    async def _handler(self, ws: ServerConnection) -> None:
        self._count += 1
        conn = _Connection(self, ws, self._count)
        self._connections.add(conn)
        self.stats.connections += 1
        self.stats.active += 1
        log.info("simulator_connection_opened", connection=conn.number)
        conn.tasks = [
            asyncio.create_task(conn.writer(), name=f"sim-{conn.number}-writer"),
            asyncio.create_task(conn.heartbeats(), name=f"sim-{conn.number}-heartbeats"),
            asyncio.create_task(conn.pump(), name=f"sim-{conn.number}-pump"),
        ]
        conn.emit_alone(self._hello(conn))
        try:
            async for message in ws:
                if conn.closing:
                    break
                try:
                    await conn.handle(message)
                except _Closing:
                    break
        except ConnectionClosed:
            pass
        finally:
            conn.closing = True
            conn.queue.put_nowait(None)
            for task in conn.tasks:
                if not task.done() and task is not asyncio.current_task():
                    task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            self._connections.discard(conn)
            self.stats.active -= 1
            log.info("simulator_connection_closed", connection=conn.number)


# ---------------------------------------------------------------------------------- threads


@contextlib.contextmanager
def run_simulator_in_thread(**kwargs: Any) -> Iterator[SimulatorServer]:
    """Run a :class:`SimulatorServer` on its own event-loop thread (for sync code and tests).

    Yields the started server; stops it and joins the thread on exit."""
    server = SimulatorServer(**kwargs)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # report to the caller instead of dying silently
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="pocketquant-simulator", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if failure:
        thread.join(timeout=5)
        loop.close()
        raise failure[0]
    try:
        yield server
    finally:
        future = asyncio.run_coroutine_threadsafe(server.stop(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

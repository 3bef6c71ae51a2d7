"""One client connection: its chart and quote sessions, output packing, heartbeats, live data.

Everything a connection sends goes through one writer task (message order is the order of
emission); frames emitted within ``pack_window_s`` share one WebSocket message, as the real
server packs them. Output faults (silence, drops, malformed frames) are applied by the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_end, bar_starts_between
from pocketquant_pipelines.market.timeutil import from_epoch
from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame
from tradingview_simulator.faults import FUTURE_TICK_PRICE_FACTOR, FUTURE_TICK_TIME
from tradingview_simulator.history_text import frame_text, future_marks_text, history_params
from tradingview_simulator.market import BarArrays, _SymbolModel
from tradingview_simulator.payloads import (
    CUSTOM_RESOLUTION,
    NODE,
    SECONDS_RESOLUTION,
    STANDARD_RESOLUTIONS,
    TICKS_RESOLUTION,
    args_text,
    bar_values,
    json_text,
    parse_window,
    symbol_info,
    valid_zone,
    window_bars,
)
from tradingview_simulator.quote_feed import QuoteFeed, filter_fields

if TYPE_CHECKING:
    from tradingview_simulator.server import SimulatorServer

log = get_logger()

ANONYMOUS_TOKENS = frozenset({"unauthorized_user_token", "widget_user_token"})
_MAX_QUEUED_MESSAGES = 32  # backpressure: no new live data while this many messages wait


def _is_heartbeat(frame: str) -> bool:
    return "~m~~h~" in frame[:16]


def _is_malformed(frame: str) -> bool:
    return len(frame) < 120 and "qs_broken" in frame


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
        return encode_frame(json_text({"m": method, "p": params, "t": int(now), "t_ms": int(now * 1000)}))

    def stamp_texts(self, method: str, param_texts: list[str]) -> str:
        """``stamp`` with params already JSON text (history frames are composed as text)."""
        return encode_frame(frame_text(method, param_texts, self.now()))

    @staticmethod
    def plain(method: str, params: list) -> str:
        return encode_frame(json_text({"m": method, "p": params}))

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
                last_t = None
                for t, v in sub.feed.advance(visible):
                    v = filter_fields(v, quote.fields)
                    if v:
                        order += 1
                        last_t = t
                        updates.append((t, order, self.plain("qsd", [quote.qs, {"n": sub.name, "s": "ok", "v": v}])))
                if last_t is not None and self._future_tick_due(sub.name):
                    order += 1
                    updates.append((last_t, order, self._future_tick(quote, sub)))
        updates.sort()
        frames.extend(f for _, _, f in updates)
        if frames:
            self.emit(*frames)

    def _future_tick_due(self, name: str) -> bool:
        faults = self.server.faults
        if faults.future_ticks <= 0:
            return False
        if faults.future_tick_symbol is not None and faults.future_tick_symbol != name:
            return False
        faults.future_ticks -= 1
        self.server.stats.future_ticks_sent += 1
        return True

    def _future_tick(self, quote: _QuoteSession, sub: _QuoteSub) -> str:
        """A tick dated in the year 3000 (faults.future_ticks). Not recorded in the feed's
        values: the next real update differs from the last real one in ``lp`` and ``lp_time``
        and so resends both, putting the client's merged quote right again."""
        last = sub.feed.values.get("lp") or 1.0
        v = filter_fields({"lp": last * FUTURE_TICK_PRICE_FACTOR, "lp_time": FUTURE_TICK_TIME}, quote.fields)
        log.info("simulator_future_tick", connection=self.number, symbol=sub.name, lp_time=FUTURE_TICK_TIME)
        return self.plain("qsd", [quote.qs, {"n": sub.name, "s": "ok", "v": v}])

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
        for k, v in enumerate(bar_values(model.spec, bars)):
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
        if tz == "exchange" or valid_zone(tz):
            chart.timezone = tz
        else:
            self.critical_error(chart.cs, "invalid timezone", f'method: switch_timezone. args: "[{tz}]"')

    async def cmd_resolve_symbol(self, p: list) -> None:
        chart = await self._chart("resolve_symbol", p)
        if len(p) < 3 or not isinstance(p[1], str) or not isinstance(p[2], str):
            self.critical_error(chart.cs, "invalid parameters", f'method: resolve_symbol. args: "{args_text(p[1:])}"')
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
            self.critical_error(chart.cs, "invalid parameters", f'method: modify_series. args: "{args_text(p[1:])}"')
            return
        params = list(p[:5]) + [old.requested] + ([p[5]] if len(p) > 5 and p[5] != "" else [])
        await self._load_series(chart, params, "modify_series")

    def cmd_remove_series(self, p: list) -> None:
        chart = self.charts.get(p[0]) if p and isinstance(p[0], str) else None
        if chart is not None and len(p) > 1:
            chart.series.pop(p[1], None)

    async def _load_series(self, chart: _ChartSession, p: list, method: str) -> None:
        cs = chart.cs
        bad = f'method: {method}. args: "{args_text(p[1:])}"'
        if len(p) < 6 or not all(isinstance(x, str) for x in p[1:5]):
            self.critical_error(cs, "invalid parameters", bad)
            return
        sid, turnaround, ref, resolution = p[1], p[2], p[3], p[4]
        interval = STANDARD_RESOLUTIONS.get(resolution)
        if interval is None:
            if SECONDS_RESOLUTION.fullmatch(resolution) or TICKS_RESOLUTION.fullmatch(resolution):
                reason = "seconds_not_entitled" if resolution.endswith("S") else "custom_resolution"
            elif CUSTOM_RESOLUTION.fullmatch(resolution):
                reason = "custom_resolution"
            else:
                self.critical_error(cs, "invalid parameters", bad)
                return
            self.emit(self.stamp("series_loading", [cs, sid, turnaround]),
                      self.stamp("series_error", [cs, sid, turnaround, reason]))
            return
        window = parse_window(p[5], p[6] if len(p) > 6 else "")
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
            window_bars, model, interval, visible, depth, min(requested, depth), end_at, start_at
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
        params = history_params(series, bars, 0)
        extra_times = self.server.faults.history_extra_times
        if extra_times and len(bars):
            params = (self._with_extra_rows(params[0], sid, extra_times), params[1])
        self.emit(
            self.stamp_texts("timescale_update", [json_text(cs), *params]),
            # Sent after the bars in 2023 captures; clients must simply ignore it.
            self.plain("series_timeframe", [cs, sid, turnaround, 0, max(0, len(bars) - 1), "LASTSESSION", True]),
            self.stamp("series_completed", [cs, sid, model.spec.update_mode, turnaround, {"rt_update_period": 5}]),
        )
        series.completed = True

    def _with_extra_rows(self, series_text: str, sid: str, times: tuple[float, ...]) -> str:
        """The fault ``history_extra_times``: the series text with one more row per time
        (only on this fault path, so decoding and re-encoding the JSON costs nothing else)."""
        payload = json.loads(series_text)
        rows = payload[sid]["s"]
        last = rows[-1]
        for k, t in enumerate(times, start=1):
            rows.append({"i": last["i"] + k, "v": [t, *last["v"][1:]]})
        self.server.stats.extra_history_rows += len(times)
        return json_text(payload)

    async def cmd_request_more_data(self, p: list) -> None:
        chart = await self._chart("request_more_data", p)
        series = chart.series.get(p[1]) if len(p) > 2 and isinstance(p[1], str) else None
        n = p[2] if len(p) > 2 else None
        if series is None or not isinstance(n, int) or isinstance(n, bool) or n <= 0 or not series.completed:
            self.critical_error(chart.cs, "invalid parameters", f'method: request_more_data. args: "{args_text(p[1:])}"')
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
            self.stamp_texts("timescale_update", [json_text(chart.cs), *history_params(series, bars, 0)]),
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
        marks = future_marks_text(model, times, series.last_index + 1, interval)
        self.emit(self.stamp_texts("timescale_update", [json_text(chart.cs), "{}", marks]))

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

"""The chart-session commands: timezones, symbol resolution, series and their pages.

Errors as observed: an unknown session id is a ``protocol_error`` (the socket closes), bad
arguments a ``critical_error`` (it stays open), an unknown symbol a ``series_error`` and never
``series_completed``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.sessions import bar_end, bar_starts_between
from pocketquant_pipelines.market.timeutil import from_epoch
from tradingview_simulator.connection_state import ChartSession, ResolvedSymbol, SeriesState
from tradingview_simulator.history_text import future_marks_text, history_params
from tradingview_simulator.outbox import plain_frame
from tradingview_simulator.payloads import NODE, json_text, symbol_info, window_bars
from tradingview_simulator.request_params import (
    CUSTOM_RESOLUTION,
    SECONDS_RESOLUTION,
    STANDARD_RESOLUTIONS,
    TICKS_RESOLUTION,
    args_text,
    parse_window,
    valid_zone,
)

if TYPE_CHECKING:
    from tradingview_simulator.connection import Connection

__all__ = ["ChartCommands"]


def _positive_int(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n > 0


class ChartCommands:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.out = conn.out
        self.charts: dict[str, ChartSession] = conn.charts

    def handlers(self) -> dict[str, Callable]:
        return {
            "switch_timezone": self.switch_timezone,
            "resolve_symbol": self.resolve_symbol,
            "create_series": self.create_series,
            "modify_series": self.modify_series,
            "remove_series": self.remove_series,
            "request_more_data": self.request_more_data,
            "request_more_tickmarks": self.request_more_tickmarks,
        }

    async def _chart(self, method: str, p: list) -> ChartSession:
        return await self.conn.session_of(self.charts, method, p)

    def _bad_args(self, chart: ChartSession, method: str, p: list) -> None:
        self.conn.critical_error(chart.cs, "invalid parameters", f'method: {method}. args: "{args_text(p[1:])}"')

    async def switch_timezone(self, p: list) -> None:
        chart = await self._chart("switch_timezone", p)
        tz = p[1] if len(p) > 1 else None
        if tz == "exchange" or valid_zone(tz):
            chart.timezone = tz
        else:
            self.conn.critical_error(chart.cs, "invalid timezone", f'method: switch_timezone. args: "[{tz}]"')

    async def resolve_symbol(self, p: list) -> None:
        chart = await self._chart("resolve_symbol", p)
        if len(p) < 3 or not isinstance(p[1], str) or not isinstance(p[2], str):
            self._bad_args(chart, "resolve_symbol", p)
            return
        ref, descriptor = p[1], p[2]
        resolved = ResolvedSymbol(ref, descriptor, self.conn.lookup(descriptor))
        chart.symbols[ref] = resolved
        # The real server answers a moment later; a create_series arriving meanwhile gets its
        # series_loading out first (observed order: series_loading, symbol_resolved).
        self.out.loop.call_later(self.conn.state.config.resolve_delay_s, self._send_resolution, chart, resolved)

    def _send_resolution(self, chart: ChartSession, resolved: ResolvedSymbol) -> None:
        if resolved.sent or self.conn.closing or self.charts.get(chart.cs) is not chart:
            return
        resolved.sent = True
        if resolved.model is not None:
            self.out.emit(self.out.stamp("symbol_resolved", [chart.cs, resolved.ref, symbol_info(resolved.model.spec)]))
        else:
            self.out.emit(self.out.stamp("symbol_error", [chart.cs, resolved.ref, "invalid symbol"]))

    async def create_series(self, p: list) -> None:
        chart = await self._chart("create_series", p)
        await self._load_series(chart, p, "create_series")

    async def modify_series(self, p: list) -> None:
        chart = await self._chart("modify_series", p)
        old = chart.series.get(p[1]) if len(p) > 1 and isinstance(p[1], str) else None
        if old is None:
            self._bad_args(chart, "modify_series", p)
            return
        params = list(p[:5]) + [old.requested] + ([p[5]] if len(p) > 5 and p[5] != "" else [])
        await self._load_series(chart, params, "modify_series")

    def remove_series(self, p: list) -> None:
        chart = self.charts.get(p[0]) if p and isinstance(p[0], str) else None
        if chart is not None and len(p) > 1:
            chart.series.pop(p[1], None)

    async def _load_series(self, chart: ChartSession, p: list, method: str) -> None:
        out, conn = self.out, self.conn
        cs = chart.cs
        if len(p) < 6 or not all(isinstance(x, str) for x in p[1:5]):
            self._bad_args(chart, method, p)
            return
        sid, turnaround, ref, resolution = p[1], p[2], p[3], p[4]
        interval = STANDARD_RESOLUTIONS.get(resolution)
        if interval is None:
            if SECONDS_RESOLUTION.fullmatch(resolution) or TICKS_RESOLUTION.fullmatch(resolution):
                reason = "seconds_not_entitled" if resolution.endswith("S") else "custom_resolution"
            elif CUSTOM_RESOLUTION.fullmatch(resolution):
                reason = "custom_resolution"
            else:
                self._bad_args(chart, method, p)
                return
            out.emit(out.stamp("series_loading", [cs, sid, turnaround]),
                     out.stamp("series_error", [cs, sid, turnaround, reason]))
            return
        window = parse_window(p[5], p[6] if len(p) > 6 else "")
        if window is None:
            self._bad_args(chart, method, p)
            return
        resolved = chart.symbols.get(ref)
        out.emit(out.stamp("series_loading", [cs, sid, turnaround]))
        if resolved is None or resolved.model is None:
            if resolved is not None:
                self._send_resolution(chart, resolved)
            chart.series.pop(sid, None)
            out.emit(out.stamp("series_error", [cs, sid, turnaround, "resolve error", f"{NODE}@{NODE}"]))
            return
        self._send_resolution(chart, resolved)
        model = resolved.model
        count, end_at, start_at = window
        visible = math.floor(out.now()) - model.spec.delay_s
        depth = conn.depth
        requested = count if count is not None else depth
        series = SeriesState(sid, turnaround, ref, model, interval, requested)
        chart.series[sid] = series
        if conn.state.config.empty_first_update:
            # RS events.json: the first timescale_update of a new series can be empty.
            out.emit(out.stamp("timescale_update", [
                cs, {sid: {"s": [], "ns": {"d": "", "indexes": []}, "t": turnaround}},
                {"index": 0, "zoffset": 0, "changes": [], "marks": [], "index_diff": []},
            ]))
        bars = await asyncio.to_thread(
            window_bars, model, interval, visible, depth, min(requested, depth), end_at, start_at
        )
        if chart.series.get(sid) is not series or conn.closing:
            return  # replaced or removed while loading
        series.loaded = len(bars)
        series.cursor = visible
        series.live = end_at is None or end_at >= visible
        if len(bars):
            series.oldest = int(bars.time[0])
            series.last_time = int(bars.time[-1])
            series.last_index = len(bars) - 1
        else:
            series.oldest = series.last_time = visible
        params = history_params(series, bars, 0)
        extra_times = conn.state.faults.history_extra_times
        if extra_times and len(bars):
            params = (self._with_extra_rows(params[0], sid, extra_times), params[1])
        out.emit(
            out.stamp_texts("timescale_update", [json_text(cs), *params]),
            # Sent after the bars in 2023 captures; clients must simply ignore it.
            plain_frame("series_timeframe", [cs, sid, turnaround, 0, max(0, len(bars) - 1), "LASTSESSION", True]),
            out.stamp("series_completed", [cs, sid, model.spec.update_mode, turnaround, {"rt_update_period": 5}]),
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
        self.conn.state.stats.extra_history_rows += len(times)
        return json_text(payload)

    async def request_more_data(self, p: list) -> None:
        chart = await self._chart("request_more_data", p)
        series = chart.series.get(p[1]) if len(p) > 2 and isinstance(p[1], str) else None
        n = p[2] if len(p) > 2 else None
        if series is None or not _positive_int(n) or not series.completed:
            self._bad_args(chart, "request_more_data", p)
            return
        depth = self.conn.depth
        want = min(n, depth - series.loaded)
        model = series.model
        if want > 0 and series.oldest is not None:
            bars = await asyncio.to_thread(model.bars, series.interval, series.oldest, want)
        else:
            bars = BarColumns.empty(model.spec.symbol, series.interval)
        got = len(bars)
        if got:
            series.oldest = int(bars.time[0])
            series.loaded += got
            series.last_index += got  # older bars take indexes 0..got-1; the rest shift
        extra: dict[str, Any] = {"rt_update_period": 5}
        if got < want or series.loaded >= depth:
            extra["data_completed"] = "end"
        out = self.out
        out.emit(
            out.stamp_texts("timescale_update", [json_text(chart.cs), *history_params(series, bars, 0)]),
            out.stamp("series_completed", [chart.cs, series.sid, model.spec.update_mode, series.turnaround, extra]),
        )

    async def request_more_tickmarks(self, p: list) -> None:
        """Future time-scale marks: a timescale_update whose p[1] is ``{}`` (DT-2019)."""
        chart = await self._chart("request_more_tickmarks", p)
        series = chart.series.get(p[1]) if len(p) > 2 and isinstance(p[1], str) else None
        n = p[2] if len(p) > 2 else None
        if series is None or series.last_time is None or not _positive_int(n):
            return
        model, interval = series.model, series.interval
        after = bar_end(from_epoch(series.last_time), interval, model.session)
        horizon = after + timedelta(seconds=interval.nominal_seconds * (n + 1) * 3) + timedelta(days=10)
        starts = bar_starts_between(after, horizon, interval, model.session)[: min(n, 1000)]
        times = np.asarray([int(t.timestamp()) for t in starts], dtype=np.int64)
        marks = future_marks_text(model, times, series.last_index + 1, interval)
        self.out.emit(self.out.stamp_texts("timescale_update", [json_text(chart.cs), "{}", marks]))

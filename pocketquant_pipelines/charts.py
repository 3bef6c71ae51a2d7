"""Candlestick charts with volume, drawn with matplotlib (no display: the Agg backend).

One function, :func:`candlestick_png`, used by ``pocketquant chart`` and by the datasets'
materialization preview. Candles are drawn as bodies (open..close) and wicks (low..high) on an
evenly spaced axis, one slot per bar, so nights, weekends and holidays leave no gaps; the
x labels carry the UTC dates.
"""

import io
from pathlib import Path

import numpy as np
import pandas as pd

UP, DOWN = "#26a69a", "#ef5350"    # the usual green/red of trading charts
PARTIAL = "#9e9e9e"                # a bar the stream wrote before it closed


def candlestick_png(frame: pd.DataFrame, title: str, out: Path | io.IOBase | None = None,
                    width_in: float = 10.0, height_in: float = 5.5, dpi: int = 100) -> bytes:
    """Draw ``frame`` (read_bars' shape: UTC index, open/high/low/close/volume, partial) as
    candles over a volume panel; return the PNG bytes and write them to ``out`` if given."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    price_ax, volume_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    n = len(frame)
    x = np.arange(n)
    if n:
        o, h, lo, c = (frame[k].to_numpy(float) for k in ("open", "high", "low", "close"))
        partial = frame["partial"].to_numpy(bool) if "partial" in frame else np.zeros(n, bool)
        colors = np.where(partial, PARTIAL, np.where(c >= o, UP, DOWN))
        price_ax.vlines(x, lo, h, colors=colors, linewidth=0.8)
        body_low, body_height = np.minimum(o, c), np.abs(c - o)
        # a doji still shows: at least a hairline body
        body_height = np.maximum(body_height, (np.nanmax(h) - np.nanmin(lo)) * 0.002)
        price_ax.bar(x, body_height, bottom=body_low, width=0.7, color=colors, linewidth=0)
        volume = frame["volume"].to_numpy(float) if "volume" in frame else np.zeros(n)
        volume_ax.bar(x, np.nan_to_num(volume), width=0.7, color=colors, linewidth=0)
        ticks = np.linspace(0, n - 1, num=min(n, 8), dtype=int)
        volume_ax.set_xticks(ticks)
        volume_ax.set_xticklabels([_label(frame.index[i], frame.index) for i in ticks], fontsize=8)
        price_ax.set_xlim(-1, n)
    else:
        price_ax.text(0.5, 0.5, "no bars in this range", ha="center", va="center",
                      transform=price_ax.transAxes)
    price_ax.set_title(title, fontsize=11, loc="left")
    price_ax.grid(alpha=0.2)
    volume_ax.grid(alpha=0.2)
    price_ax.set_ylabel("price")
    volume_ax.set_ylabel("volume")
    from matplotlib.ticker import FuncFormatter

    volume_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    if isinstance(out, Path | str):
        Path(out).write_bytes(data)
    elif out is not None:
        out.write(data)
    return data


def _short(value: float) -> str:
    """40000000 -> '40M': volume ticks a reader takes in at a glance."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _label(stamp: pd.Timestamp, index: pd.DatetimeIndex) -> str:
    span = index[-1] - index[0] if len(index) > 1 else pd.Timedelta(0)
    return stamp.strftime("%Y-%m-%d" if span >= pd.Timedelta(days=3) else "%m-%d %H:%M")


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 60) -> str:
    """The last ``width`` values as one line of block characters, low to high (NaN: a space).

    What the Dagster UI can show inline: its markdown renderer allows images only from http(s)
    addresses, so a chart drawn into the metadata itself has to be text."""
    data = np.asarray(list(values)[-width:], dtype=float)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return ""
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo or 1.0
    return "".join(" " if not np.isfinite(v) else _BLOCKS[min(7, int((v - lo) / span * 8))] for v in data)


def chart_markdown(frame: pd.DataFrame, title: str, width: int = 60) -> str:
    """A small text chart of the latest bars: closes and volumes as sparklines with the range."""
    if frame.empty:
        return f"**{title}**: no bars"
    tail = frame.iloc[-width:]
    close, volume = tail["close"], tail["volume"] if "volume" in tail else pd.Series(dtype=float)
    first, last = tail.index[0], tail.index[-1]
    return (f"**{title}** — last {len(tail)} bars, {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC\n\n"
            f"```\nclose  {sparkline(close, width)}  {close.min():g} .. {close.max():g} (last {close.iloc[-1]:g})\n"
            f"volume {sparkline(volume, width)}  max {_short(float(np.nanmax(volume))) if volume.notna().any() else '-'}\n```")

"""TradingView wire framing: ``~m~LEN~m~PAYLOAD``, several frames per WebSocket message.

Facts this module relies on (shared/tradingview-protocol.md §1.3-1.6):

* LEN counts the payload in UTF-16 code units (JavaScript ``String.length``), not bytes and not
  Python code points; they differ for characters outside the BMP (emoji).
* We *send* ASCII-only JSON (``ensure_ascii=True``), so every definition of LEN agrees and a
  server counting bytes or code points reads our frames the same way.
* The payload is JSON (``{"m":..., "p":[...]}`` or the hello, which has ``session_id`` and no
  ``m``) or a heartbeat ``~h~<n>``.
* Numbers may be ``1e+100``: a "no value" sentinel (see :func:`sentinel_to_none`).

``decode_message`` never raises: a malformed frame becomes an ``error`` frame and decoding
resynchronises on the next ``~m~<digits>~m~`` header, because one bad frame must not take the
stream down. A frame whose header declares more than ``max_frame`` UTF-16 units is such an
error too, named as over the cap, whatever the message holds: no frame is sliced, parsed or
waited for on the word of a length header. ``decode_message(text, strict=True)`` raises :class:`FrameDecodeError` instead,
for callers (tests, tools) that want to stop at the first problem.
"""

from __future__ import annotations

import gc
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from pocketquant_pipelines.tradingview.errors import TradingViewError

__all__ = [
    "Frame",
    "FrameDecodeError",
    "decode_message",
    "encode_frame",
    "encode_heartbeat",
    "encode_message",
    "sentinel_to_none",
    "utf16_len",
]

_MARK = "~m~"
_HEADER = re.compile(r"~m~(\d{1,10})~m~")  # 10 digits: no frame is anywhere near 10 GB
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_HEARTBEAT = "~h~"
_LEGACY_JSON = "~j~"  # socket.io-era prefix in TradingView's JS; never seen on the wire, cheap to accept

# The connection passes its message cap (TRADINGVIEW_MAX_MESSAGE_BYTES); this default is the
# same 8 MiB, for callers that decode text from elsewhere.
MAX_FRAME_UNITS = 8 * 1024 * 1024

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
_std_loads = json.loads
_fast_loads = orjson.loads
_FastDecodeError = orjson.JSONDecodeError


def _parse(body: str) -> Any:
    """Parse JSON text: orjson (about 4x faster than the stdlib on a 5000-bar history frame,
    and a tick's frames are mostly JSON parsing), falling back to the stdlib for the few inputs
    orjson is stricter about (NaN/Infinity literals, lone surrogates), so exactly the same
    payloads decode as with the stdlib alone. One difference remains: orjson reads an integer
    beyond 64 bits as a float; no TradingView number (prices, volumes, epoch seconds) is
    anywhere near that."""
    try:
        return _fast_loads(body)
    except _FastDecodeError:
        return _std_loads(body)


# A 5000-bar history frame becomes ~10,000 lists and dicts. Created with the cyclic garbage
# collector on, they trigger a dozen young-generation passes and, every few pages, a full
# collection of the whole process (30-40 ms spikes in a 12 ms fetch). Parsed JSON holds no
# reference cycles, so pausing the collector while such a payload is built loses nothing.
_GC_PAUSE_CHARS = 100_000  # history pages; quote frames are a few hundred characters


def _loads(body: str) -> Any:
    if len(body) < _GC_PAUSE_CHARS or not gc.isenabled():
        return _parse(body)
    gc.disable()
    try:
        return _parse(body)
    finally:
        gc.enable()


SENTINEL_ABS = 1e99


class FrameDecodeError(TradingViewError):
    """A frame that cannot be decoded (bad header, bad length, bad JSON). Raised only by the
    strict API; the default decoder reports it as an ``error`` frame instead."""

    def __init__(self, message: str, *, position: int | None = None, raw: str = ""):
        super().__init__(message)
        self.position = position
        self.raw = raw


@dataclass(slots=True)
class Frame:
    """One decoded frame.

    kind: ``message`` (method + params), ``heartbeat`` (``raw`` is ``~h~N``), ``hello`` (``data``
    is the server hello) or ``error`` (``error`` says why, ``raw`` is the text skipped).
    """

    kind: str
    method: str | None = None
    params: list = field(default_factory=list)
    raw: str = ""
    data: dict | None = None
    t: float | None = None
    t_ms: float | None = None
    error: str | None = None

    @property
    def session(self) -> str | None:
        """p[0] when it is a string: the chart/quote session id that routing keys on."""
        if self.params and isinstance(self.params[0], str):
            return self.params[0]
        return None

    @property
    def heartbeat_number(self) -> int | None:
        if self.kind != "heartbeat":
            return None
        digits = self.raw[len(_HEARTBEAT):]
        return int(digits) if digits.isdigit() else None


# --------------------------------------------------------------------------- encoding


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, i.e. JavaScript ``String.length``."""
    if text.isascii():
        return len(text)
    return len(text) + len(_ASTRAL.findall(text))


def encode_frame(payload: dict | list | str) -> str:
    """Frame one payload. A dict/list is dumped as compact ASCII JSON; a str (a heartbeat
    ``~h~3``, or JSON text already dumped) is framed as is with its UTF-16 length."""
    if isinstance(payload, str):
        text = payload
    elif isinstance(payload, (dict, list)):
        text = _dumps(payload)
    else:
        raise TypeError(f"cannot frame a {type(payload).__name__}; expected dict or str")
    return f"{_MARK}{utf16_len(text)}{_MARK}{text}"


def encode_message(method: str, params: list | tuple = ()) -> str:
    """Frame ``{"m": method, "p": [...params]}``."""
    return encode_frame({"m": method, "p": list(params)})


def encode_heartbeat(number: int | str) -> str:
    return encode_frame(f"{_HEARTBEAT}{number}")


# --------------------------------------------------------------------------- decoding


def _payload_end(text: str, start: int, units: int) -> int | None:
    """Index where a payload of ``units`` UTF-16 code units starting at ``start`` ends, or
    None if the text is too short or the boundary would split a surrogate pair."""
    # A payload of `units` UTF-16 units has at most `units` code points (astral ones count 2).
    end = min(start + units, len(text))
    segment = text[start:end]
    if segment.isascii():
        return end if end - start == units else None
    count = end - start + len(_ASTRAL.findall(segment))  # units covered by text[start:end]
    if count < units:
        return None
    # Non-BMP characters count twice: walk back code point by code point.
    while count > units and end > start:
        end -= 1
        count -= 2 if ord(text[end]) > 0xFFFF else 1
    return end if count == units else None


def _error(reason: str, raw: str, position: int) -> Frame:
    return Frame("error", raw=raw, error=f"{reason} at offset {position}")


def _parse_payload(payload: str, position: int) -> Frame:
    if payload.startswith(_HEARTBEAT):
        return Frame("heartbeat", raw=payload)
    body = payload[3:] if payload.startswith(_LEGACY_JSON) else payload
    try:
        obj = _loads(body)
    except (ValueError, RecursionError) as exc:
        return _error(f"invalid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", payload, position)
    if not isinstance(obj, dict):
        return _error(f"payload is a JSON {type(obj).__name__}, expected an object", payload, position)
    method = obj.get("m")
    if method is not None:
        if not isinstance(method, str):
            return _error(f"method {method!r} is not a string", payload, position)
        params = obj.get("p", [])
        if not isinstance(params, list):
            return _error(f"params of {method!r} are not a list", payload, position)
        return Frame("message", method, params, payload, obj, obj.get("t"), obj.get("t_ms"))
    if "session_id" in obj:
        return Frame("hello", raw=payload, data=obj, t=obj.get("timestamp"), t_ms=obj.get("timestampMs"))
    return _error("JSON object has neither 'm' nor 'session_id'", payload, position)


def decode_message(text: str, strict: bool = False, max_frame: int = MAX_FRAME_UNITS) -> list[Frame]:
    """Split one WebSocket text message into frames.

    Never raises unless ``strict``: problems become ``error`` frames (count them) and decoding
    resumes at the next ``~m~<digits>~m~`` header. With ``strict=True`` the first problem
    raises :class:`FrameDecodeError`. A header declaring more than ``max_frame`` UTF-16 units
    is an error frame (``over the frame cap``).
    """
    if not isinstance(text, str):
        if strict:
            raise FrameDecodeError(f"message is {type(text).__name__}, expected str")
        return [Frame("error", raw=repr(text)[:200], error=f"message is {type(text).__name__}, expected str")]
    frames: list[Frame] = []
    n = len(text)
    pos = 0
    # Nearly every message is ASCII (TradingView escapes little; quotes never carry text):
    # then LEN is a plain character count and the per-frame UTF-16 walk can be skipped.
    ascii_only = text.isascii()
    while pos < n:
        header = _HEADER.match(text, pos)
        if header is None:
            nxt = _HEADER.search(text, pos + 1)
            stop = nxt.start() if nxt else n
            frame = _error("expected a ~m~LEN~m~ header", text[pos:stop], pos)
            if strict:
                raise FrameDecodeError(frame.error, position=pos, raw=frame.raw)
            frames.append(frame)
            pos = stop
            continue
        start = header.end()
        units = int(header.group(1))
        if units > max_frame:
            nxt = _HEADER.search(text, start)
            stop = nxt.start() if nxt else n
            frame = _error(f"declared length {units} is over the frame cap of {max_frame}", text[pos:stop][:200], pos)
            if strict:
                raise FrameDecodeError(frame.error, position=pos, raw=frame.raw)
            frames.append(frame)
            pos = stop
            continue
        if ascii_only:
            end = start + units if start + units <= n else None
        else:
            end = _payload_end(text, start, units)
        frame = None if end is None else _parse_payload(text[start:end], pos)
        inner = _HEADER.search(text, start) if frame is not None and frame.kind == "error" else None
        if inner is not None and inner.start() >= end:
            inner = None
        if frame is None or inner is not None or (frame.kind == "error" and end < n and not text.startswith(_MARK, end)):
            # (A slice that does not parse and holds a header ran into the next frame: the
            # length is too long, and resynchronising at that header keeps the next frame.)
            # The declared length does not fit the message, or its slice is not a payload and
            # does not end at a frame boundary either: the length is wrong. Skip to the next
            # header. (A payload that parses is kept even if junk follows it; the junk is
            # reported on its own by the header check.)
            nxt = _HEADER.search(text, start)
            stop = nxt.start() if nxt else n
            why = "declared length runs past the message" if end is None else "declared length does not end at a frame boundary"
            frame = _error(f"{why} (LEN {header.group(1)})", text[pos:stop], pos)
            if strict:
                raise FrameDecodeError(frame.error, position=pos, raw=frame.raw)
            frames.append(frame)
            pos = stop
            continue
        if strict and frame.kind == "error":
            raise FrameDecodeError(frame.error, position=pos, raw=frame.raw)
        frames.append(frame)
        pos = end
    return frames


# --------------------------------------------------------------------------- values


def sentinel_to_none(value: Any) -> Any:
    """``None`` for TradingView's "no value" markers (|x| >= 1e99, e.g. ``1e+100`` volume on an
    index; NaN/inf), the value unchanged otherwise."""
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= SENTINEL_ABS:
            return None
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= SENTINEL_ABS:
        return None
    return value

"""The wire codec: framing, UTF-16 lengths, multi-frame messages, resynchronisation."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.tradingview import codec
from pocketquant_pipelines.tradingview.codec import (
    Frame,
    FrameDecodeError,
    decode_message,
    encode_frame,
    encode_heartbeat,
    encode_message,
    sentinel_to_none,
    utf16_len,
)

# JSON values as the server sends them (finite floats only: JSON has no NaN).
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
messages = st.builds(
    lambda m, p: {"m": m, "p": p}, st.text(min_size=1, max_size=20), st.lists(json_values, max_size=5)
)


def test_encode_is_ascii_with_compact_separators():
    frame = encode_message("set_auth_token", ["unauthorized_user_token"])
    assert frame == '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}'
    emoji = encode_frame({"m": "x", "p": ["é😀"]})
    assert emoji.isascii()
    # once escaped, bytes, code points and UTF-16 units all agree
    payload = emoji.split("~m~", 2)[2]
    assert int(emoji.split("~m~")[1]) == len(payload) == len(payload.encode()) == utf16_len(payload)


def test_heartbeat_is_framed_as_is():
    assert encode_heartbeat(1) == "~m~4~m~~h~1"
    assert encode_frame("~h~157") == "~m~6~m~~h~157"
    (frame,) = decode_message("~m~5~m~~h~10")
    assert frame.kind == "heartbeat" and frame.raw == "~h~10" and frame.heartbeat_number == 10


def test_len_counts_utf16_units_not_code_points_or_bytes():
    # A server writing JS String.length: the emoji counts 2, "é" counts 1.
    payload = json.dumps({"m": "qsd", "p": ["qs_1", {"n": "X:Y", "v": {"description": "é😀 rocket"}}]},
                         ensure_ascii=False)
    assert utf16_len(payload) == len(payload) + 1
    text = f"~m~{utf16_len(payload)}~m~{payload}" + encode_heartbeat(2)
    frames = decode_message(text)
    assert [f.kind for f in frames] == ["message", "heartbeat"]
    assert frames[0].params[1]["v"]["description"] == "é😀 rocket"
    # Python's len (code points) would be one short: that is a bad length, reported not raised
    wrong = f"~m~{len(payload)}~m~{payload}" + encode_heartbeat(2)
    frames = decode_message(wrong)
    assert [f.kind for f in frames] == ["error", "heartbeat"]


def test_length_that_splits_a_surrogate_pair_is_an_error():
    frames = decode_message('~m~1~m~😀~m~4~m~~h~1')
    assert [f.kind for f in frames] == ["error", "heartbeat"]


def test_hello_message_and_fields():
    hello = encode_frame({"session_id": "0.1_x", "timestamp": 1, "timestampMs": 1000, "protocol": "json"})
    msg = encode_frame({"m": "series_loading", "p": ["cs_a", "s1", "s1"], "t": 5, "t_ms": 5001})
    frames = decode_message(hello + msg)
    assert frames[0].kind == "hello" and frames[0].data["session_id"] == "0.1_x"
    assert frames[1].kind == "message" and frames[1].method == "series_loading"
    assert frames[1].session == "cs_a" and frames[1].t == 5 and frames[1].t_ms == 5001


@pytest.mark.parametrize(
    "bad, why",
    [
        ('~m~999~m~{"m":"x"', "runs past"),
        ('~m~4~m~{"m":"x","p":[]}', "frame boundary"),
        ("~m~7~m~{nope:}", "invalid JSON"),
        ("~m~2~m~[]", "JSON list"),
        ('~m~7~m~{"a":1}', "neither"),
        ('~m~14~m~{"m":1,"p":[]}', "not a string"),
        ('~m~16~m~{"m":"x","p":{}}', "not a list"),
        ("garbage", "header"),
    ],
)
def test_malformed_frames_become_error_frames_and_decoding_goes_on(bad, why):
    good = encode_message("qsd", ["qs_1", {"n": "A:B", "s": "ok", "v": {"lp": 1.5}}])
    frames = decode_message(good + bad + good)
    kinds = [f.kind for f in frames]
    assert kinds.count("error") == 1, frames
    assert why in next(f for f in frames if f.kind == "error").error
    assert [f.params[1]["v"]["lp"] for f in frames if f.kind == "message"] == [1.5, 1.5]
    with pytest.raises(FrameDecodeError):
        decode_message(good + bad + good, strict=True)


def test_sentinels():
    assert sentinel_to_none(1e100) is None
    assert sentinel_to_none(-1.0000000000000000159e100) is None
    assert sentinel_to_none(float("nan")) is None
    assert sentinel_to_none(9.9e98) == 9.9e98
    assert sentinel_to_none(0) == 0 and sentinel_to_none(None) is None
    (frame,) = decode_message('~m~56~m~{"m":"qsd","p":["qs",{"n":"I:X","v":{"volume":1e+100}}]}')
    assert sentinel_to_none(frame.params[1]["v"]["volume"]) is None


@given(st.lists(messages, min_size=1, max_size=6))
def test_round_trip_messages(payloads):
    text = "".join(encode_frame(p) for p in payloads)
    frames = decode_message(text, strict=True)
    assert [f.kind for f in frames] == ["message"] * len(payloads)
    assert [{"m": f.method, "p": f.params} for f in frames] == payloads


@given(messages)
def test_round_trip_unescaped_non_ascii_with_utf16_length(payload):
    # What a JS server sends: raw non-ASCII (emoji included), LEN = String.length.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    text = f"~m~{utf16_len(body)}~m~{body}" * 2
    frames = decode_message(text, strict=True)
    assert [{"m": f.method, "p": f.params} for f in frames] == [payload, payload]


@given(st.integers(0, 10**9))
def test_round_trip_heartbeats(n):
    (frame,) = decode_message(encode_heartbeat(n))
    assert frame.heartbeat_number == n


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_never_raises(text):
    frames = decode_message(text)
    assert all(isinstance(f, Frame) for f in frames)
    try:
        decode_message(text, strict=True)
    except FrameDecodeError:
        pass


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(blacklist_characters="~")), messages)
def test_garbage_before_a_frame_is_skipped(garbage, payload):
    frames = decode_message(garbage + encode_frame(payload))
    assert frames[-1].kind == "message" and frames[-1].params == payload["p"]
    assert sum(f.kind == "error" for f in frames) == (1 if garbage else 0)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["~m~", "~h~", "5", "12", "{", "}", '"m"', ":", "[", "]", "é", "😀", ","]),
                max_size=40))
def test_frame_like_junk_never_raises(parts):
    decode_message("".join(parts))


def test_one_hundred_thousand_random_frames():
    rng = random.Random(20261121)
    originals: list[dict | str] = []
    texts: list[str] = []
    words = ["qsd", "du", "series_completed", "é", "삼성", "😀", "BINANCE:BTCUSDT", ""]
    message: list[str] = []
    for i in range(100_000):
        if rng.random() < 0.1:
            payload: dict | str = f"~h~{i}"
        else:
            payload = {"m": rng.choice(words), "p": [f"cs_{i}", rng.random() * 1e6, rng.choice(words),
                                                      {"v": [i, 1e100, -0.5]}]}
        originals.append(payload)
        message.append(encode_frame(payload))
        if len(message) >= rng.randint(1, 20):
            texts.append("".join(message))
            message = []
    if message:
        texts.append("".join(message))
    decoded = [f for t in texts for f in decode_message(t)]
    assert len(decoded) == 100_000
    for frame, original in zip(decoded, originals, strict=True):
        if isinstance(original, str):
            assert frame.kind == "heartbeat" and frame.raw == original
        else:
            assert frame.method == original["m"] and frame.params == original["p"]


def test_payload_containing_frame_markers_is_not_split():
    # A description holding "~m~12~m~" breaks the regex-split parsers most libraries use.
    payload = {"m": "qsd", "p": ["qs_1", {"n": "X:Y", "v": {"description": "a ~m~12~m~ b ~h~3"}}]}
    frames = decode_message(encode_frame(payload) + encode_heartbeat(4))
    assert [f.kind for f in frames] == ["message", "heartbeat"]
    assert frames[0].params == payload["p"]


@pytest.mark.parametrize("body, check", [
    # orjson rejects these three; the decoder must still accept them as the stdlib does
    ('{"m":"qsd","p":["qs",{"v":{"lp":NaN,"ask":Infinity}}]}',
     lambda p: p[1]["v"]["lp"] != p[1]["v"]["lp"] and p[1]["v"]["ask"] == float("inf")),
    ('{"m":"qsd","p":["qs",{"v":{"description":"\\ud800 lone"}}]}',
     lambda p: p[1]["v"]["description"] == "\ud800 lone"),
], ids=["nan-infinity", "lone-surrogate"])
def test_payloads_the_fast_parser_rejects_still_decode(body, check):
    (frame,) = decode_message(encode_frame(body), strict=True)
    assert frame.kind == "message" and check(frame.params)


def test_integers_beyond_64_bits_become_floats():
    # orjson's one lossy difference from the stdlib; no TradingView number comes near 2**64
    (frame,) = decode_message(encode_frame('{"m":"x","p":[123456789012345678901234567890, 9007199254740993]}'))
    assert frame.params == [1.2345678901234568e29, 9007199254740993]


@given(st.lists(messages, min_size=1, max_size=6))
def test_fast_and_stdlib_parsers_agree(payloads):
    text = "".join(encode_frame(p) for p in payloads)
    decoded = [f.data for f in decode_message(text, strict=True)]
    assert decoded == [json.loads(encode_frame(p).split("~m~", 2)[2]) for p in payloads]


def test_large_payloads_pause_the_garbage_collector_and_restore_its_state():
    import gc

    big = encode_message("timescale_update", ["cs", {"s": [{"i": i, "v": [i, 1.0, 2.0, 0.5, 1.5]} for i in range(5000)]}])
    bad = "~m~200001~m~{" + "x" * 200000  # invalid JSON, large: the collector must come back on anyway
    assert gc.isenabled()
    seen = []
    real_parse = codec._parse

    def spy(body):
        seen.append(gc.isenabled())
        return real_parse(body)

    codec._parse = spy
    try:
        (frame,) = decode_message(big)
        assert frame.kind == "message" and len(frame.params[1]["s"]) == 5000
        assert decode_message(bad)[0].kind == "error"
        assert seen == [False, False] and gc.isenabled()
        gc.disable()  # an application that runs with the collector off keeps it off
        try:
            decode_message(big)
            assert not gc.isenabled()
        finally:
            gc.enable()
        decode_message('~m~4~m~~h~1' + encode_message("qsd", ["qs", {}]))
        assert seen[-1] is True  # small frames never touch it
    finally:
        codec._parse = real_parse

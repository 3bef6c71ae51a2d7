"""The codec's own frame cap and its resynchronisation after a frame whose LEN is too long."""

import pytest

from pocketquant_pipelines.settings import DEFAULT_MAX_MESSAGE_BYTES, load_settings
from pocketquant_pipelines.tradingview.codec import (
    MAX_FRAME_UNITS,
    FrameDecodeError,
    decode_message,
    encode_message,
)

PAGE = '{"m":"timescale_update","p":["cs_abcdefghijkl",{"sds_1":{"s":[]}}]}'
DONE = encode_message("series_completed", ["cs_abcdefghijkl"])  # shorter than PAGE


def test_a_header_over_the_cap_is_an_error_and_the_next_frame_survives():
    frames = decode_message(f"~m~{len(PAGE)}~m~{PAGE}" + DONE, max_frame=len(PAGE) - 1)
    assert [f.kind for f in frames] == ["error", "message"]
    assert f"declared length {len(PAGE)} is over the frame cap of {len(PAGE) - 1}" in frames[0].error
    assert frames[1].method == "series_completed"


def test_a_lying_header_is_never_waited_for_or_sliced():
    frames = decode_message(f"~m~9999999999~m~{PAGE}")
    assert len(frames) == 1 and frames[0].kind == "error" and "over the frame cap" in frames[0].error
    with pytest.raises(FrameDecodeError, match="over the frame cap"):
        decode_message(f"~m~9999999999~m~{PAGE}", strict=True)


@pytest.mark.parametrize("extra", [1, 5, 9, 30])
def test_a_len_too_long_resyncs_at_the_header_it_ran_into(extra):
    frames = decode_message(f"~m~{len(PAGE) + extra}~m~{PAGE}" + DONE)
    assert [f.kind for f in frames] == ["error", "message"], [f.error for f in frames]
    assert frames[1].method == "series_completed"
    assert "cs_abcdefghijkl" in frames[0].raw[:256]  # what lets the connection name the session


def test_the_codec_cap_and_the_message_setting_agree_by_default():
    assert MAX_FRAME_UNITS == DEFAULT_MAX_MESSAGE_BYTES == load_settings(env={}).tradingview_max_message_bytes


def test_deadline_and_cap_settings_defaults_and_bounds():
    s = load_settings(env={})
    assert (s.tradingview_history_deadline_s, s.tradingview_quote_silence_s) == (300.0, 60.0)
    s = load_settings(env={"TRADINGVIEW_HISTORY_DEADLINE_S": "3600", "TRADINGVIEW_QUOTE_SILENCE_S": "0.5",
                           "TRADINGVIEW_MAX_MESSAGE_BYTES": "268435456"})
    assert (s.tradingview_history_deadline_s, s.tradingview_quote_silence_s) == (3600.0, 0.5)
    assert s.tradingview_max_message_bytes == 256 * 1024 * 1024

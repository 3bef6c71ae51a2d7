"""Every record of shared/tradingview-frames.jsonl (real captured frames) through our codec.

Wire records must decode as they are; records that other tools printed as pretty JSON or Python
reprs (their notes say "NOT wire text") are parsed and re-encoded, then decoded.
"""

import ast
import json
import re
from pathlib import Path

import pytest

from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame, sentinel_to_none

# A verbatim copy of shared/tradingview-frames.jsonl, kept in the repo so a fresh clone has it.
FRAMES_FILE = Path(__file__).parent / "data" / "tradingview-frames.jsonl"

RECORDS = [json.loads(line) for line in FRAMES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
WRAPPED_LINE = 90  # the Kotlin raw string wraps the frame with one newline (its note says so)


def by_index(i: int) -> dict:
    return RECORDS[i]


def payload_of(record: dict):
    """The parsed payload of a record that is not wire text."""
    raw = record["raw"].strip()
    if raw.startswith("{'"):
        return ast.literal_eval(raw)
    return json.loads(raw)


def wire_frames(record: dict):
    raw = record["raw"]
    if raw.startswith("~m~"):
        return decode_message(raw)
    return decode_message(encode_frame(payload_of(record)))


def test_file_has_all_records():
    assert len(RECORDS) == 91


@pytest.mark.parametrize("index", range(91))
def test_every_record_decodes_to_the_kind_its_note_names(index):
    record = by_index(index)
    tag = re.match(r"\[([^\]]*)\]", record["note"]).group(1)
    frames = wire_frames(record)
    if index == WRAPPED_LINE:
        # As stored, LEN (112) stops one short of the closing brace: a bad length, reported.
        assert [f.kind for f in frames] == ["error"]
        frames = decode_message(record["raw"].replace("\n", ""))
    assert frames and all(f.kind != "error" for f in frames), [f.error for f in frames]
    if not record["raw"].startswith("~m~"):
        assert "NOT wire text" in record["note"]
    words = set(re.findall(r"[a-z_]+", tag))
    first = frames[0]
    if "hello" in words:
        assert first.kind == "hello" and "session_id" in first.data
    elif "heartbeat" in words:
        assert first.kind == "heartbeat" and first.heartbeat_number is not None
    else:
        assert first.kind == "message" and (first.method in words or first.method in tag), (tag, first.method)
    counted = re.search(r"(\d+) (?:qsd )?frames", tag)
    if counted:
        assert len(frames) == int(counted.group(1))
    elif "packed" in tag:
        assert len(frames) == 2


def test_multi_frame_message_with_errors_keeps_order_and_words():
    frames = decode_message(by_index(68)["raw"])
    assert [f.method for f in frames] == ["critical_error", "series_loading", "symbol_error", "series_error"]
    assert frames[0].params == ["qs_vtnztfvikwom", "invalid_parameters", "quote_add_symbols"]
    assert frames[2].params[2] == "invalid symbol"
    assert frames[3].params[3] == "resolve error"
    assert frames[3].t == 1742933764 and frames[3].t_ms == 1742933764250


def test_protocol_error_bad_auth_token():
    (frame,) = decode_message(by_index(59)["raw"])
    assert frame.method == "protocol_error" and frame.params == ["bad auth token"]


def test_critical_error_invalid_parameters():
    (frame,) = decode_message(by_index(62)["raw"])
    assert frame.method == "critical_error"
    assert frame.params[1] == "invalid parameters"
    assert frame.params[2].startswith("method: create_series.")


def test_daily_timescale_update_values():
    (frame,) = decode_message(by_index(16)["raw"])
    series = frame.params[1]["sds_7"]
    assert len(series["s"]) == 368
    assert series["s"][0]["v"] == [1640183400.0, 4650.36, 4697.67, 4645.53, 4696.57, 1798000000.0]


def test_one_minute_timescale_update_has_no_volume():
    (frame,) = decode_message(by_index(15)["raw"])
    bars = frame.params[1]["sds_3"]["s"]
    assert len(bars) == 2637 and all(len(b["v"]) == 5 for b in bars)
    assert bars[0]["v"] == [1685984640.0, 14.88, 14.88, 14.88, 14.88]


def test_index_volume_sentinel_and_long_floats():
    (ndx,) = decode_message(by_index(3)["raw"])
    assert sentinel_to_none(ndx.params[1]["v"]["volume"]) is None
    (partial,) = decode_message(by_index(47)["raw"])
    assert partial.params[1]["v"]["lp"] == pytest.approx(8004.77)


def test_non_ascii_length_is_utf16():
    (frame,) = decode_message(by_index(89)["raw"])
    assert frame.params[1]["v"]["local_description"] == "삼성전자보통주"


def test_series_completed_end_of_history_marker():
    (frame,) = wire_frames(by_index(83))
    assert frame.method == "series_completed" and frame.params[4]["data_completed"] == "end"


def test_quote_error_and_descriptor_echo():
    (err,) = wire_frames(by_index(82))
    assert err.params[1] == {"n": "FOREX:EURUSD", "s": "error", "errmsg": "no_such_symbol", "v": {}}
    (desc,) = wire_frames(by_index(81))
    assert desc.params[1]["n"].startswith('={"adjustment"')

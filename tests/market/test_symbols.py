"""EXCHANGE:CODE symbols: what is accepted, how it is normalised, and errors naming the value."""

import pytest

from pocketquant_pipelines.errors import InvalidInputError, InvalidSymbolError
from pocketquant_pipelines.market.symbols import Symbol, normalize_symbol


@pytest.mark.parametrize("text, exchange, code", [
    ("NASDAQ:AAPL", "NASDAQ", "AAPL"),
    ("BINANCE:BTCUSDT", "BINANCE", "BTCUSDT"),
    ("CME_MINI:NQ1!", "CME_MINI", "NQ1!"),
    ("NYSE:BRK.B", "NYSE", "BRK.B"),
    ("BINANCE:BTCUSDT.P", "BINANCE", "BTCUSDT.P"),
    ("CME:6E1!", "CME", "6E1!"),
    ("SP:SPX", "SP", "SPX"),
    ("nasdaq:aapl", "NASDAQ", "AAPL"),  # lowercase is normalised
    ("Binance:btcUSDT", "BINANCE", "BTCUSDT"),
])
def test_good_symbols(text, exchange, code):
    symbol = Symbol.parse(text)
    assert (symbol.exchange, symbol.code) == (exchange, code)
    assert str(symbol) == f"{exchange}:{code}" == normalize_symbol(text)
    assert Symbol.parse(symbol) is symbol
    assert Symbol.parse(str(symbol)) == symbol  # the canonical form is a fixed point


def test_symbols_order_and_hash_by_value():
    assert Symbol.parse("nasdaq:aapl") == Symbol.parse("NASDAQ:AAPL")
    assert len({Symbol.parse("nasdaq:aapl"), Symbol.parse("NASDAQ:AAPL")}) == 1
    assert sorted([Symbol.parse("NYSE:A"), Symbol.parse("NASDAQ:Z")])[0].exchange == "NASDAQ"


@pytest.mark.parametrize("bad, why", [
    ("NASDAQ: AAPL", "whitespace"),
    (" NASDAQ:AAPL", "whitespace"),
    ("NASDAQ:AAPL\n", "whitespace"),
    ("NASDAQ:AA\tPL", "whitespace"),
    ("NASDAQ:AAPL|X", "'|'"),
    ("NASDAQ:AAPL,MSFT", "','"),
    ("NASDAQ:[AAPL]", "'['"),
    ("NASDAQ:AAPL]", "']'"),
    ("NASDAQ:A...B", "'...'"),
    ("NASDAQAAPL", "exactly one ':'"),
    ("NASDAQ:AAPL:X", "exactly one ':'"),
    ("", "empty"),
    (":AAPL", "exchange ''"),
    ("NASDAQ:", "code ''"),
    ("NAS-DAQ:AAPL", "exchange 'NAS-DAQ'"),
    ("NASDAQ:AA*PL", "code 'AA*PL'"),
])
def test_bad_symbols_are_rejected_naming_the_value(bad, why):
    with pytest.raises(InvalidSymbolError) as info:
        Symbol.parse(bad)
    message = str(info.value)
    assert repr(bad) in message and why in message
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad, char", [
    ("nasdaq:straße", "ß"),        # str.upper() would make it NASDAQ:STRASSE
    ("NASDAQ:STRAßE", "ß"),
    ("nasdaq:aapl\u0131", "ı"),    # dotless i: upper() gives a plain I
    ("NASDAQ:ﬀ", "ﬀ"),            # the ligature upper-cases to FF
    ("KRX:005930", None),          # plain ASCII digits stay fine
    ("ＮＡＳＤＡＱ:AAPL", "Ｎ"),       # full-width letters are not ASCII either
    ("NASDAQ:AAPL\u00a0", "\u00a0"),  # a no-break space
    ("BINANCE:BTCUSDT€", "€"),
])
def test_non_ascii_is_refused_never_rewritten(bad, char):
    if char is None:
        assert normalize_symbol(bad) == bad
        return
    with pytest.raises(InvalidSymbolError) as info:
        Symbol.parse(bad)
    message = str(info.value)
    assert repr(bad) in message and repr(char) in message and "not ASCII" in message


def test_ascii_lower_case_is_still_upper_cased():
    assert normalize_symbol("cme_mini:nq1!") == "CME_MINI:NQ1!"
    assert normalize_symbol("nyse:brk.b") == "NYSE:BRK.B"
    assert normalize_symbol("nse:m&m") == "NSE:M&M"


@pytest.mark.parametrize("bad", [None, 42, b"NASDAQ:AAPL"])
def test_non_strings_are_rejected_naming_the_value(bad):
    with pytest.raises(InvalidSymbolError) as info:
        normalize_symbol(bad)
    assert repr(bad) in str(info.value)

"""Exchange calendars of the simulator's US symbols, in the form TradingView sends them.

NYSE facts (full-day closures and the 13:00 early closes), 2018-2027, as the exchange publishes
them; cross-checked against the package exchange-calendars (XNYS) and, for 2018-2024, against
the ``session_holidays`` of the real SP:SPX ``symbol_resolved`` in the captured frames, which
lists the same dates except the one-off closure 2018-12-05 (national day of mourning), which
TradingView's list lacks (its daily history has no bar that day). The one-off closure of
2025-01-09 arrives as a ``dayoff:`` correction, as reported for NASDAQ:AAPL.
"""

from __future__ import annotations

NYSE_HOLIDAYS: tuple[str, ...] = (
    "20180101", "20180115", "20180219", "20180330", "20180528", "20180704", "20180903", "20181122", "20181225",
    "20190101", "20190121", "20190218", "20190419", "20190527", "20190704", "20190902", "20191128", "20191225",
    "20200101", "20200120", "20200217", "20200410", "20200525", "20200703", "20200907", "20201126", "20201225",
    "20210101", "20210118", "20210215", "20210402", "20210531", "20210705", "20210906", "20211125", "20211224",
    "20220117", "20220221", "20220415", "20220530", "20220620", "20220704", "20220905", "20221124", "20221226",
    "20230102", "20230116", "20230220", "20230407", "20230529", "20230619", "20230704", "20230904", "20231123",
    "20231225",
    "20240101", "20240115", "20240219", "20240329", "20240527", "20240619", "20240704", "20240902", "20241128",
    "20241225",
    "20250101", "20250120", "20250217", "20250418", "20250526", "20250619", "20250704", "20250901", "20251127",
    "20251225",
    "20260101", "20260119", "20260216", "20260403", "20260525", "20260619", "20260703", "20260907", "20261126",
    "20261225",
    "20270101", "20270118", "20270215", "20270326", "20270531", "20270618", "20270705", "20270906", "20271125",
    "20271224",
)

# 13:00 New York closes: the day before Independence Day (when it is a weekday session), the
# day after Thanksgiving, Christmas Eve (when it is a weekday session and not the holiday).
NYSE_EARLY_CLOSES: tuple[str, ...] = (
    "20180703", "20181123", "20181224",
    "20190703", "20191129", "20191224",
    "20201127", "20201224",
    "20211126",
    "20221125",
    "20230703", "20231124",
    "20240703", "20241129", "20241224",
    "20250703", "20251128", "20251224",
    "20261127", "20261224",
    "20271126",
)

# Listed latest first, as TradingView lists a correction's dates.
NYSE_CORRECTIONS = "0930-1300:" + ",".join(sorted(NYSE_EARLY_CLOSES, reverse=True)) + ";dayoff:20250109"

# Closed days that TradingView's symbol_resolved does not list (only the history shows them).
NYSE_UNLISTED_CLOSURES: tuple[str, ...] = ("20181205",)

"""The quote-session commands: field selection, subscriptions, fast/hibernate."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from tradingview_simulator.connection_state import QuoteSession, QuoteSubscription
from tradingview_simulator.outbox import plain_frame
from tradingview_simulator.quote_feed import QuoteFeed, filter_fields

if TYPE_CHECKING:
    from tradingview_simulator.connection import Connection

__all__ = ["QuoteCommands"]


class QuoteCommands:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.quotes: dict[str, QuoteSession] = conn.quotes

    def handlers(self) -> dict[str, Callable]:
        return {
            "quote_set_fields": self.set_fields,
            "quote_add_symbols": self.add_symbols,
            "quote_remove_symbols": self.remove_symbols,
            "quote_fast_symbols": self.fast_symbols,
            "quote_hibernate_all": self.hibernate_all,
        }

    async def _quote(self, method: str, p: list) -> QuoteSession:
        return await self.conn.session_of(self.quotes, method, p)

    async def set_fields(self, p: list) -> None:
        quote = await self._quote("quote_set_fields", p)
        quote.fields = {f for f in p[1:] if isinstance(f, str)}

    async def add_symbols(self, p: list) -> None:
        quote = await self._quote("quote_add_symbols", p)
        items = p[1:]
        if any(not isinstance(x, str) for x in items):
            # The old {"flags":["force_permission"]} object: the whole command fails, the
            # socket stays open and no symbol is added (issue 0xrushi/tradingview-scraper#25).
            self.conn.critical_error(quote.qs, "invalid_parameters", "quote_add_symbols")
            return
        snapshots, completed = [], []
        now = math.floor(self.conn.out.now())
        for name in items:
            if name in quote.subs:
                continue
            model = self.conn.lookup(name)
            if model is None:
                snapshots.append(plain_frame("qsd", [quote.qs, {"n": name, "s": "error", "errmsg": "no_such_symbol", "v": {}}]))
                continue
            feed = QuoteFeed(model)
            v = filter_fields(feed.snapshot(now - model.spec.delay_s), quote.fields)
            quote.subs[name] = QuoteSubscription(name, model, feed)
            snapshots.append(plain_frame("qsd", [quote.qs, {"n": name, "s": "ok", "v": v}]))
            completed.append(plain_frame("quote_completed", [quote.qs, name]))
        self.conn.out.emit(*snapshots, *completed)

    async def remove_symbols(self, p: list) -> None:
        quote = await self._quote("quote_remove_symbols", p)
        for name in p[1:]:
            if isinstance(name, str):
                quote.subs.pop(name, None)
                quote.fast.discard(name)

    async def fast_symbols(self, p: list) -> None:
        quote = await self._quote("quote_fast_symbols", p)
        quote.fast = {name for name in p[1:] if isinstance(name, str)}

    async def hibernate_all(self, p: list) -> None:
        quote = await self._quote("quote_hibernate_all", p)
        quote.hibernated = True

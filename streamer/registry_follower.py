"""Registry following: the symbols marked stream=True -> the pipeline's symbols and the quote
subscriptions, re-read every STREAMER_REGISTRY_POLL_S without a restart.

A symbol streamed before any historical sync has no session in the registry, so its bars
would be bucketed 24x7 and kept out of the store. The quote snapshot carries no session
string; ``symbol_resolved`` does. So the follower asks TradingView once
(``resolve_symbol``, the same call ``symbols add`` makes), records timezone/session in the
registry as a sync would, and re-applies the registry: the aggregator is rebuilt with the
real session at once instead of after the first sync. On failure the symbol stays unaligned
until a sync runs.

With several replicas (``STREAMER_REPLICA_COUNT``), each follows only the symbols its share
owns (``market.replicas``): every replica reads the whole registry and keeps its part, so a
registry change reaches the owning replica at its next poll and no other.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.replicas import ReplicaShare
from pocketquant_pipelines.storage.bars import BarStore
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.symbol_metadata import record_metadata
from streamer.quote_source import QuoteClient
from streamer.symbols import SymbolState
from streamer.tick_pipeline import TickPipeline

log = get_logger("streamer")

Subscriber = Callable[[list[str]], Awaitable[None]]


class RegistryFollower:
    def __init__(self, store: BarStore, client: QuoteClient, pipeline: TickPipeline, *,
                 subscribe: Subscriber, unsubscribe: Subscriber, poll_s: float,
                 tasks: list[asyncio.Task], share: ReplicaShare = ReplicaShare()) -> None:
        self.store = store
        self.share = share
        self.client = client
        self.pipeline = pipeline
        self._subscribe, self._unsubscribe = subscribe, unsubscribe
        self.poll_s = poll_s
        self._tasks = tasks  # the service's background tasks: cancelled at shutdown
        self._resolving: set[str] = set()  # symbols whose session is being asked for

    async def poll_forever(self) -> None:
        while True:
            try:
                infos = await asyncio.to_thread(self.store.list_symbols, True)
                await self.apply(infos)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - store down: keep streaming what we have
                log.warning("registry_poll_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.poll_s)

    async def apply(self, infos: Iterable[SymbolInfo]) -> None:
        symbols = self.pipeline.symbols
        owns = self.share.owns
        wanted = {i.symbol: i for i in infos if i.stream and owns(i.symbol)}
        added = [s for s in wanted if s not in symbols]
        removed = [s for s in symbols if s not in wanted]
        for symbol in removed:
            self.pipeline.retire(symbol)
        for symbol in wanted:
            if symbol in symbols and symbols[symbol].session_confirmed(wanted[symbol]):
                log.info("symbol_session_confirmed", symbol=symbol, session=wanted[symbol].session)
                # bars completed until now were held back; the store's view of this stream
                # starts here, so bars already in progress are written partial (a sync completes them)
                symbols[symbol].session_known = True
                symbols[symbol].anchor = None
            if symbol in symbols and symbols[symbol].session_changed(wanted[symbol]):
                log.info("symbol_session_updated", symbol=symbol, session=wanted[symbol].session,
                         timezone=wanted[symbol].timezone)
                self.pipeline.retire(symbol)
                added.append(symbol)
        for symbol in added:
            state = SymbolState.create(wanted[symbol])
            self.pipeline.add(state)
            if not state.session_known:
                self._resolve_session_soon(symbol)
        new = [s for s in added if s not in removed]
        gone = [s for s in removed if s not in wanted]
        if gone:
            await self._unsubscribe(gone)
        if new:
            # resubscribing a symbol whose session changed is harmless (a fresh snapshot)
            await self._subscribe(sorted(new))
        if added or removed:
            log.info("subscriptions_changed", added=sorted(set(added) - set(removed)), removed=gone,
                     total=len(symbols))

    def _resolve_session_soon(self, symbol: str) -> None:
        if symbol in self._resolving:
            return
        self._resolving.add(symbol)
        self._tasks.append(asyncio.create_task(self._resolve_session(symbol), name=f"resolve-{symbol}"))

    async def _resolve_session(self, symbol: str) -> None:
        try:
            meta = await self.client.resolve_symbol(symbol)
            if not (meta.session and meta.timezone):
                log.warning("symbol_session_unresolved", symbol=symbol, reason="symbol_resolved had no session")
                return
            await asyncio.to_thread(record_metadata, self.store, symbol, meta)
            log.info("symbol_session_resolved", symbol=symbol, session=meta.session, timezone=meta.timezone)
            await self.apply(await asyncio.to_thread(self.store.list_symbols, True))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - unknown symbol, network, store: a sync fixes it later
            log.warning("symbol_session_unresolved", symbol=symbol, reason=f"{type(exc).__name__}: {exc}")
        finally:
            self._resolving.discard(symbol)

"""Fault injection for the simulator, switchable per test at run time.

Every field of :class:`FaultConfig` is read live by the server, so a test can flip it while
clients are connected (``server.faults.drop_after_frames = 5``). Plain attribute writes are
safe from another thread (``run_simulator_in_thread``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

FUTURE_TICK_TIME = 32_503_680_000  # 3000-01-01T00:00:00Z, epoch seconds
FUTURE_TICK_PRICE_FACTOR = 1000


@dataclass
class FaultConfig:
    drop_after_frames: int | None = None
    """Abort each connection (TCP reset, no close frame) once it has been sent this many
    frames (heartbeats included, the hello counts as frame 1)."""

    drop_every_s: float | None = None
    """Abort each connection this many wall seconds after it opened."""

    silent: bool = False
    """Send nothing at all (no data, no heartbeats) and keep the socket open."""

    malformed_every: int | None = None
    """After every N data frames, insert one malformed frame (alternately a wrong LEN and
    broken JSON) into the same WebSocket message. Real frames are never lost."""

    refuse_connections: int = 0
    """Refuse the next K upgrade attempts with HTTP 429 (decremented per refusal)."""

    reply_delay_s: float = 0.0
    """Wait this long before handling each client message (a slow server)."""

    check_heartbeats: bool = True
    """Close connections whose heartbeats are not echoed within the grace period."""

    history_extra_times: tuple[float, ...] = ()
    """Append one bar dated at each of these epoch seconds (e.g. the year 3000, or before
    1970) to the first ``timescale_update`` of every history series: a server whose clock or
    data went wrong. Each extra bar repeats the values of the newest real bar."""

    future_ticks: int = 0
    """Send this many quote ticks dated ``FUTURE_TICK_TIME`` (3000-01-01, a server clock gone
    wrong), one after a live quote update, then decrement. The tick is a ``qsd`` frame with only
    ``lp`` (the last price times ``FUTURE_TICK_PRICE_FACTOR``, a price no real tick has) and
    ``lp_time``; no volume, so every real tick's volume still adds up. The next real update
    resends ``lp`` and ``lp_time``, so a client's merged quote is right again after it."""

    future_tick_symbol: str | None = None
    """Only this symbol (the subscribed string) gets the future ticks; None: whichever
    quote symbol updates next."""


@dataclass
class ServerStats:
    """Counters tests read. Totals over the server's life; ``active`` is current."""

    connections: int = 0          # WebSocket connections accepted
    refused: int = 0              # upgrades refused with HTTP 429
    active: int = 0               # connections open now
    commands: Counter = field(default_factory=Counter)  # client method -> count
    frames_received: int = 0      # client frames (heartbeat echoes included)
    frames_sent: int = 0          # server frames (heartbeats included, malformed excluded)
    messages_sent: int = 0        # WebSocket messages (one may pack several frames)
    packed_messages: int = 0      # messages that held more than one frame
    heartbeats_sent: int = 0
    heartbeats_echoed: int = 0
    heartbeat_timeouts: int = 0   # connections closed because echoes stopped
    malformed_sent: int = 0
    dropped: int = 0              # connections aborted by a fault
    protocol_errors: int = 0      # protocol_error frames sent (the socket closes after each)
    critical_errors: int = 0
    extra_history_rows: int = 0   # rows added by faults.history_extra_times
    future_ticks_sent: int = 0    # quote ticks dated FUTURE_TICK_TIME (faults.future_ticks)

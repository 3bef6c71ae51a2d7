"""Which streamer replica streams which symbol: rendezvous (highest-random-weight) hashing.

Replica ``i`` of ``n`` owns a symbol when ``weight(symbol, i)`` is the highest of the ``n``
weights, a weight being the first 8 bytes of BLAKE2b over ``"<i>|<symbol>"``. Each symbol has
exactly one owner, every replica computes the same answer from the symbol alone (no
coordination, no shared state), and going from ``n`` to ``n + 1`` replicas moves only the
symbols the new replica wins -- about ``1/(n + 1)`` of them -- while the rest keep their owner.
A stable hash, not Python's ``hash()``, which is salted per process.

The index and count come from ``STREAMER_REPLICA_INDEX`` / ``STREAMER_REPLICA_COUNT``, as a
StatefulSet ordinal would set them.
"""

from dataclasses import dataclass
from hashlib import blake2b

from pocketquant_pipelines.errors import InvalidInputError


def weight(symbol: str, index: int) -> int:
    return int.from_bytes(blake2b(f"{index}|{symbol}".encode(), digest_size=8).digest(), "big")


def owner(symbol: str, count: int) -> int:
    """The index (0..count-1) of the replica that streams ``symbol``."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidInputError(f"replica count {count!r} must be an integer >= 1")
    if count == 1:
        return 0
    return max(range(count), key=lambda i: weight(symbol, i))


@dataclass(frozen=True)
class ReplicaShare:
    """One replica's place: its index among ``count`` replicas."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInputError(f"replica {name} {value!r} is not an integer")
        if self.count < 1:
            raise InvalidInputError(f"replica count {self.count!r} must be >= 1")
        if not 0 <= self.index < self.count:
            raise InvalidInputError(
                f"replica index {self.index!r} must be in 0..{self.count - 1} (count {self.count})")

    def owns(self, symbol: str) -> bool:
        return self.count == 1 or owner(symbol, self.count) == self.index

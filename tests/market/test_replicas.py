"""Replica assignment (market.replicas): rendezvous hashing of symbols over streamer replicas."""

import subprocess
import sys

import pytest

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.replicas import ReplicaShare, owner

SYMBOLS = [f"{exchange}:S{i:05d}" for exchange in ("NASDAQ", "BINANCE") for i in range(5_000)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_replica_shares_cover_every_symbol_exactly_once(count):
    shares = [ReplicaShare(i, count) for i in range(count)]
    owners = [[s.index for s in shares if s.owns(symbol)] for symbol in SYMBOLS[:4000]]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [i]) for i in range(count)]
    # balanced: each replica within 15 % of its fair share of 4000 symbols
    assert all(abs(size - 4000 / count) <= 0.15 * 4000 / count for size in sizes), sizes


def test_replica_count_3_to_4_moves_about_a_quarter_and_only_to_the_new_replica():
    before = {s: owner(s, 3) for s in SYMBOLS}
    after = {s: owner(s, 4) for s in SYMBOLS}
    moved = [s for s in SYMBOLS if before[s] != after[s]]
    assert 0.23 <= len(moved) / len(SYMBOLS) <= 0.27
    assert {after[s] for s in moved} == {3}  # the old replicas never swap symbols among themselves


def test_replica_count_4_to_3_moves_only_the_removed_replicas_symbols():
    before = {s: owner(s, 4) for s in SYMBOLS}
    moved = [s for s in SYMBOLS if owner(s, 3) != before[s]]
    assert moved and all(before[s] == 3 for s in moved)


def test_replica_owner_is_the_same_in_every_process():
    # Python's hash() is salted per process; the assignment must not be
    code = "from pocketquant_pipelines.market.replicas import owner; print([owner(f'NASDAQ:S{i}', 5) for i in range(200)])"
    runs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True,
                           text=True, check=True).stdout for seed in ("1", "2")}
    assert runs == {str([owner(f"NASDAQ:S{i}", 5) for i in range(200)]) + "\n"}


@pytest.mark.parametrize("index, count, message", [
    (2, 2, "replica index 2 must be in 0..1"), (-1, 3, "replica index -1 must be in 0..2"),
    (0, 0, "replica count 0 must be >= 1"), ("1", 2, "replica index '1' is not an integer"),
])
def test_replica_share_rejects_bad_values_in_one_line(index, count, message):
    with pytest.raises(InvalidInputError, match=message.replace(".", r"\.")):
        ReplicaShare(index, count)

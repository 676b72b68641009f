"""Dividing replicas by weight: the Webster (Sainte-Laguë) method, as Karmada's dispenser does it.

Each next replica goes to the cluster with the highest ``weight / (2 * replicas + 1)``.
Ties are broken by Karmada's ``tieBreakerByUID``: the cluster with fewer replicas first,
then by name, ascending or descending depending on the lowest bit of the FNV-1a hash of
the object's UID — so 1:1 with odd replicas does not always favour the same cluster
across workloads, yet the same workload always lands the same way. Priorities are
compared as IEEE doubles, as Go compares them, so equal rationals tie exactly as there.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(slots=True)
class Party:
    name: str
    votes: int
    seats: int


TieBreaker = Callable[[Party, Party], bool]
"""``tie(a, b)`` is True when ``a`` gets the next seat before ``b`` at equal priority."""


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def names_descending(uid: str) -> bool:
    """Karmada's per-object coin: an odd FNV-1a hash of the UID breaks ties by names descending."""
    return bool(uid) and fnv32a(uid.encode()) & 1 == 1


def tie_breaker_by_uid(uid: str) -> TieBreaker:
    """Fewer seats first; then names ascending, or descending when ``fnv32a(uid)`` is odd."""
    descending = names_descending(uid)

    def tie(a: Party, b: Party) -> bool:
        if a.seats != b.seats:
            return a.seats < b.seats
        return a.name > b.name if descending else a.name < b.name

    return tie


def allocate_webster_seats(new_seats: int, votes: Mapping[str, int], initial: Mapping[str, int] | None = None,
                           tie: TieBreaker | None = None, *, descending: bool = False) -> list[Party]:
    """Hand out ``new_seats`` on top of ``initial``; parties only in ``initial`` vote 0. Sorted by name.

    Without ``tie``, ties go to fewer seats, then to names ascending (``descending``: the
    other way round, which is ``tie_breaker_by_uid`` for an odd hash) — compared as
    tuples, so a thousand replicas over a hundred clusters stay cheap. A custom ``tie``
    is honoured as given (slower: a Python call per comparison).
    """
    parties: dict[str, Party] = {n: Party(n, 0, s) for n, s in (initial or {}).items()}
    for n, v in votes.items():
        if n in parties:
            parties[n].votes = v
        else:
            parties[n] = Party(n, v, 0)
    if not parties:
        return []
    ordered = sorted(parties.values(), key=lambda p: p.name)
    if tie is not None:
        _allocate_with(new_seats, ordered, tie)
        return ordered
    rank = {p.name: (-i if descending else i) for i, p in enumerate(ordered)}
    heap = [(-(float(p.votes) / float(2 * p.seats + 1)), p.seats, rank[p.name], i) for i, p in enumerate(ordered)]
    heapq.heapify(heap)
    for _ in range(max(0, new_seats)):
        _, seats, r, i = heap[0]
        party = ordered[i]
        party.seats = seats + 1
        heapq.heapreplace(heap, (-(float(party.votes) / float(2 * party.seats + 1)), party.seats, r, i))
    return ordered


class _Entry:
    """A heap entry for a custom tie breaker: Webster priority first, then ``tie``."""

    __slots__ = ("party", "priority", "tie")

    def __init__(self, party: Party, tie: TieBreaker) -> None:
        self.party = party
        self.tie = tie
        self.priority = float(party.votes) / float(2 * party.seats + 1)

    def __lt__(self, other: _Entry) -> bool:
        if self.priority == other.priority:
            return self.tie(self.party, other.party)
        return self.priority > other.priority


def _allocate_with(new_seats: int, parties: list[Party], tie: TieBreaker) -> None:
    heap = [_Entry(p, tie) for p in parties]
    heapq.heapify(heap)
    for _ in range(max(0, new_seats)):
        entry = heapq.heappop(heap)
        entry.party.seats += 1
        heapq.heappush(heap, _Entry(entry.party, tie))


@dataclass(frozen=True, slots=True)
class WeightInfo:
    name: str
    weight: int
    last_replicas: int = 0


def allocate_by_weight(replicas: int, weights: Iterable[WeightInfo], *, init: list[Obj] | None = None,
                       uid: str = "") -> list[Obj]:
    """``Dispenser.AllocateByWeight``: ``replicas`` more on top of ``init``, as ``[{name, replicas}]``.

    Nothing to hand out with something already assigned, or no weight at all, leaves
    ``init`` as it is.
    """
    result = [dict(c) for c in init or []]
    if replicas == 0 and result:
        return result
    weight_list = list(weights)
    if sum(w.weight for w in weight_list) == 0:
        return result
    initial = {str(c["name"]): int(c.get("replicas") or 0) for c in result}
    votes = {w.name: w.weight for w in weight_list}
    parties = allocate_webster_seats(replicas, votes, initial, descending=names_descending(uid))
    return [{"name": p.name, "replicas": p.seats} for p in parties]


def spread_by_target_clusters(replicas: int, weights: list[Obj], init: list[Obj] | None = None,
                              uid: str = "") -> list[Obj]:
    """``SpreadReplicasByTargetClusters``: each cluster's ``replicas`` in ``weights`` is its weight."""
    last = {str(c["name"]): int(c.get("replicas") or 0) for c in init or []}
    infos = [WeightInfo(str(c["name"]), int(c.get("replicas") or 0), last.get(str(c["name"]), 0)) for c in weights]
    return allocate_by_weight(replicas, infos, init=init, uid=uid)

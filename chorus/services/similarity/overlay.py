"""The live overlay: what the events after a version's cutoff change in the review rows it was built on.

A version holds the rows up to its cutoff (:func:`chorus.shared.events.rows.cutoff_of`). The events after it make
more rows, by the one rule of :func:`chorus.shared.events.rows.rows_of` (a row from an event replaces the version's
row of the same user and item), and a tombstone after it removes the user's rows of the version and their earlier
events. The overlay holds exactly that difference, as an immutable snapshot (:class:`Overlay`) that
:meth:`Overlay.apply` turns into the next one; :class:`LiveState` keeps the current snapshot of one served version
and brings it up to the store's last ``seq`` on every request (:meth:`LiveState.sync`).

Per side (items against users, users against items) a snapshot keeps (:class:`SideState`):

* the *touched* rows, those whose merged row differs from the version's (an item some live row names or a
  forgotten user rated; a user with live rows or forgotten), with their merged rows and statistics (count, mean,
  norm, computed by :func:`chorus.services.similarity.sparse.row_stats` over the row in raw-id order, as a build
  computes them);
* the *reached* rows of the other side: those in the version's or the merged row of a touched row. A row is
  *dirty* when it is touched or one of its entries is reached, that is when it shares a user (an item) with a
  touched row: only then can any of its similarities differ from the version's, since a similarity depends on
  nothing but the two rows and their statistics.

Ids the version does not know (new users, new items) get indices after the version's, in order of arrival
(:class:`Ids`); their place in raw-id order, which ranks ties, is kept beside them.

Cost: a request whose store has no new event costs one ``last_seq`` query. A sync costs
``O(e + Σ |changed rows| + t)`` for ``e`` new events, the merged rows they change, and ``t`` touched rows (the
snapshot's dictionaries are copied, not the version's arrays); it is shared by every request that follows.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from chorus.services.similarity.side import Side
from chorus.services.similarity.sparse import gather_rows, row_stats
from chorus.shared.contract.errors import EventsUnavailable
from chorus.shared.data.ratings import RatingScale
from chorus.shared.events.rows import purchase_rating, rows_of
from chorus.shared.events.store import Event

_PLACE_SHIFT = 33
_VERSION_BIT = 1 << 32

MEMO_SIZE = 4096
"""Most answers a snapshot keeps (:attr:`Overlay.memo`)."""


class Ids:
    """One side's ids: the version's (indices ``0..n_version-1``), then those only events name, in order of
    arrival. Append-only and added to by the syncing thread alone, so a snapshot that knows ``n`` ids reads the
    first ``n`` whatever was added since.

    Parameters
    ----------
    version_ids : str (n_version,)
        The version's ids by index.
    rank : int64 (n_version,)
        Each index's position in raw-id order.
    lookup : callable(list of str) -> int64 (n,)
        The version's index of each id, -1 for an id it does not know.
    """

    def __init__(self, version_ids: np.ndarray, rank: np.ndarray, lookup: Callable[[list[str]], np.ndarray]) -> None:
        self.version_ids = version_ids
        self.n_version = int(version_ids.shape[0])
        self.rank = np.asarray(rank, dtype=np.int64)
        self._sorted = np.asarray(version_ids)[np.argsort(self.rank, kind="stable")]
        self._lookup = lookup
        self.new: list[str] = []
        self._new_index: dict[str, int] = {}
        self._place: list[int] = []
        self._arrays: tuple[int, np.ndarray, np.ndarray] = (0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def find(self, raw: str, n: int) -> int:
        """The index of ``raw`` among the first ``n`` ids, -1 when it is not there."""
        found = int(self._lookup([raw])[0])
        if found >= 0:
            return found
        index = self._new_index.get(raw, -1)
        return index if 0 <= index < n else -1

    def indices(self, raws: list[str], add: np.ndarray) -> np.ndarray:
        """The index of each of ``raws`` (int64 (n,)); one that is new gets the next index where ``add`` (bool
        (n,)) says so, else -1."""
        out = self._lookup(raws).astype(np.int64)
        for k in np.flatnonzero(out < 0).tolist():
            raw = raws[k]
            index = self._new_index.get(raw, -1)
            if index < 0 and add[k]:
                index = self.n_version + len(self.new)
                self._place.append(bisect.bisect_left(self._sorted, raw))  # version ids that sort before it
                self.new.append(raw)
                self._new_index[raw] = index
            out[k] = index
        return out

    def raw(self, index: int) -> str:
        """The id at ``index``."""
        return str(self.version_ids[index]) if index < self.n_version else self.new[index - self.n_version]

    def keys(self, idx: np.ndarray, n: int) -> np.ndarray:
        """One int64 per index whose ascending order is raw-id order, for indices among the first ``n`` ids:
        a version id sorts by its rank, a new id just before the version id it precedes, new ids among
        themselves by their ids."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty(idx.shape[0], dtype=np.int64)
        old = idx < self.n_version
        out[old] = (self.rank[idx[old]] << _PLACE_SHIFT) | _VERSION_BIT
        if not old.all():
            fresh = idx[~old] - self.n_version
            place, order = self._new_keys(n - self.n_version)
            out[~old] = (place[fresh] << _PLACE_SHIFT) | order[fresh]
        return out

    def _new_keys(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """For the first ``m`` new ids: how many version ids sort before each, and each one's position among
        them in raw-id order; int64 (m,) each, computed once per ``m``."""
        done, place, order = self._arrays
        if done != m:
            place = np.asarray(self._place[:m], dtype=np.int64)
            order = np.empty(m, dtype=np.int64)
            order[np.argsort(np.array(self.new[:m], dtype=str), kind="stable")] = np.arange(m)
            self._arrays = (m, place, order)
        return place, order


class Row(NamedTuple):
    """A merged row: the other side's indices (int64 (n,), in raw-id order) and the ratings (float64 (n,))."""

    others: np.ndarray
    ratings: np.ndarray


_EMPTY = Row(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


@dataclass(frozen=True)
class Stats:
    """Per-row statistics of the touched rows: ``ids`` int64 (t,) ascending, and their ``count``, ``mean`` and
    ``norm`` (float64 (t,)), as :func:`~chorus.services.similarity.sparse.row_stats` defines them."""

    ids: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    norm: np.ndarray

    @classmethod
    def empty(cls) -> Stats:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0))

    def updated(self, ids: np.ndarray, count: np.ndarray, mean: np.ndarray, norm: np.ndarray) -> Stats:
        """These statistics with those of ``ids`` replaced or added."""
        keep = ~np.isin(self.ids, ids)
        all_ids = np.concatenate([self.ids[keep], ids])
        order = np.argsort(all_ids, kind="stable")

        def merged(old: np.ndarray, new: np.ndarray) -> np.ndarray:
            return np.concatenate([old[keep], new])[order]

        return Stats(all_ids[order], merged(self.count, count), merged(self.mean, mean), merged(self.norm, norm))


@dataclass(frozen=True)
class SideState:
    """One side of a snapshot: the version's rows of that kind with the overlay's changes.

    Attributes
    ----------
    version : Side
        The version's rows (items, or users).
    ids : Ids
        This side's ids; ``n`` of them belong to the snapshot.
    n : int
    rows : mapping of int to Row
        The merged row of every touched row.
    touched : bool (n,)
        Rows whose merged row differs from the version's (or may: a row set to the rating it had stays touched).
    reached : bool (n_other,)
        Rows of the other side in the version's or the merged row of a touched row.
    stats : Stats
        Statistics of the touched rows.
    """

    version: Side
    ids: Ids
    n: int
    rows: Mapping[int, Row]
    touched: np.ndarray
    reached: np.ndarray
    stats: Stats

    @property
    def name(self) -> str:
        return self.version.name

    def keys(self, idx: np.ndarray) -> np.ndarray:
        """Raw-id order keys of ``idx`` (:meth:`Ids.keys`)."""
        return self.ids.keys(idx, self.n)

    def row(self, r: int) -> Row:
        """The merged row of ``r``."""
        got = self.rows.get(r)
        if got is not None:
            return got
        if r >= self.version.n_rows:
            return _EMPTY
        others, ratings = self.version.row_entries(r)
        return Row(others.astype(np.int64), ratings)

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """Entries of the merged row of each of ``rows``: int64 (r,)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(rows.shape[0], dtype=np.int64)
        plain = ~self.touched[rows]
        out[plain] = self.version.count_int[rows[plain]]
        for k in np.flatnonzero(~plain).tolist():
            out[k] = self.row(int(rows[k])).others.shape[0]
        return out

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The merged rows of ``rows`` (int (r,)), in that order: (indptr int64 (r + 1,), other-side indices
        int64 (nnz,), ratings float64 (nnz,)); the version's rows as the version holds them, the touched ones in
        raw-id order."""
        rows = np.asarray(rows, dtype=np.int64)
        lens = self.lengths(rows)
        bptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(lens, out=bptr[1:])
        others = np.empty(int(bptr[-1]), dtype=np.int64)
        ratings = np.empty(int(bptr[-1]), dtype=np.float64)
        plain = ~self.touched[rows]
        vptr, vpos = gather_rows(self.version.indptr, rows[plain])
        dest = np.repeat(bptr[:-1][plain] - vptr[:-1], lens[plain]) + np.arange(vpos.shape[0], dtype=np.int64)
        others[dest] = self.version.indices[vpos]
        ratings[dest] = self.version.ratings[vpos]
        for k in np.flatnonzero(~plain).tolist():
            row = self.row(int(rows[k]))
            others[bptr[k] : bptr[k + 1]] = row.others
            ratings[bptr[k] : bptr[k + 1]] = row.ratings
        return bptr, others, ratings

    def row_stats(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Count, mean and norm of the merged row of each of ``rows`` (int (r,)): float64 (r,) each."""
        rows = np.asarray(rows, dtype=np.int64)
        count, mean, norm = np.zeros(rows.shape[0]), np.zeros(rows.shape[0]), np.zeros(rows.shape[0])
        hit = self.touched[rows]
        plain = rows[~hit]
        count[~hit], mean[~hit], norm[~hit] = (
            self.version.count[plain],
            self.version.mean[plain],
            self.version.norm[plain],
        )
        if hit.any():
            at = np.searchsorted(self.stats.ids, rows[hit])
            count[hit], mean[hit], norm[hit] = self.stats.count[at], self.stats.mean[at], self.stats.norm[at]
        return count, mean, norm

    def dirty(self, r: int) -> bool:
        """Whether a similarity of row ``r`` may differ from the version's: ``r`` is touched or shares an entry
        with a touched row. Costs the length of ``r``'s row."""
        if r >= self.version.n_rows or self.touched[r]:
            return True
        others, _ = self.version.row_entries(r)
        return bool(self.reached[others].any())


def _grown(mask: np.ndarray, n: int) -> np.ndarray:
    """A copy of ``mask`` (bool) with False up to length ``n``."""
    out = np.zeros(n, dtype=bool)
    out[: mask.shape[0]] = mask
    return out


@dataclass(frozen=True)
class Overlay:
    """One snapshot of a version's overlay: every event with ``seq`` up to :attr:`seen` folded in (see the module
    docstring). Immutable, so a request answers from one snapshot however many syncs run meanwhile.

    Attributes
    ----------
    cutoff : int
        The version's cutoff: events up to it are in the version.
    seen : int
        The highest ``seq`` folded in.
    items, users : SideState
        Items against users, users against items.
    live : mapping of int to mapping of int to (float, int)
        Rows from events, by user then item: (rating, seq of the event).
    live_by_item : mapping of int to mapping of int to float
        The same rows, by item then user.
    tombstones : mapping of str to int
        Users forgotten after the cutoff, with the ``seq`` of their tombstone.
    forgotten : bool (n_version_users,)
        Version users whose rows of the version no longer count.
    total, count : float, int
        Sum and number of the merged ratings (the global mean is their ratio).
    memo : dict
        Answers computed from this snapshot, kept while it is current (bounded by :data:`MEMO_SIZE`).
    """

    cutoff: int
    seen: int
    items: SideState
    users: SideState
    live: Mapping[int, Mapping[int, tuple[float, int]]]
    live_by_item: Mapping[int, Mapping[int, float]]
    tombstones: Mapping[str, int]
    forgotten: np.ndarray
    total: float
    count: int
    memo: dict[tuple[str, int, str, int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False
    )

    @classmethod
    def start(cls, items: Side, users: Side, item_ids: Ids, user_ids: Ids, cutoff: int) -> Overlay:
        """The empty overlay of a version: nothing after its ``cutoff`` folded in yet."""
        nnz = int(items.indices.shape[0])

        def side(version: Side, ids: Ids, n_other: int) -> SideState:
            n = version.n_rows
            return SideState(version, ids, n, {}, np.zeros(n, dtype=bool), np.zeros(n_other, dtype=bool), Stats.empty())

        return cls(
            cutoff=cutoff,
            seen=cutoff,
            items=side(items, item_ids, users.n_rows),
            users=side(users, user_ids, items.n_rows),
            live={},
            live_by_item={},
            tombstones={},
            forgotten=np.zeros(users.n_rows, dtype=bool),
            total=float(np.sum(items.ratings)),
            count=nnz,
        )

    @property
    def changed(self) -> bool:
        """Whether any row differs from the version's."""
        return bool(self.items.rows or self.users.rows)

    @property
    def global_mean(self) -> float:
        """The mean of every merged rating (0 when there is none)."""
        return self.total / self.count if self.count else 0.0

    def apply(self, events: Sequence[Event], tombstones: Mapping[str, int], upto: int, scale: RatingScale) -> Overlay:
        """The next snapshot: ``events`` (every event with ``seen < seq <= upto``, oldest first) and
        ``tombstones`` (every tombstone after :attr:`seen`, by user) folded in; ``scale`` is the version's rating
        scale (a rated event off it makes no row, as in training; a purchase counts as its middle).

        A tombstone ``t`` removes the user's rows of the version and their rows from events before ``t``
        (:meth:`chorus.shared.events.store.EventStore.live` reads a user the same way); a row whose latest event
        is off the scale removes the pair's earlier row from events, so the version's row counts again."""
        step = _Step(self)
        for user_id, seq in sorted(tombstones.items(), key=lambda kv: kv[1]):
            step.forget(user_id, seq)
        purchases = {e.seq for e in events if e.kind == "purchase"}
        rows = [r for r in rows_of(events, purchase_rating(scale.low, scale.high)) if r.seq >= step.after(r.user_id)]
        # float32, as the data layer holds ratings, so that the sums are those of a build on the same rows
        stars = np.array([r.rating for r in rows], dtype=np.float64)
        valid = scale.valid(stars) | np.array([r.seq in purchases for r in rows], dtype=bool)
        users = self.users.ids.indices([r.user_id for r in rows], add=valid)
        items = self.items.ids.indices([r.item_id for r in rows], add=valid)
        for row, ok, rating, u, i in zip(
            rows, valid.tolist(), stars.astype(np.float32).tolist(), users.tolist(), items.tolist(), strict=True
        ):
            if ok:
                step.put(u, i, rating, row.seq)
            elif u >= 0 and i >= 0:
                step.drop(u, i)
        return step.finish(max(upto, self.seen))


class _Step:
    """The copy of a snapshot that :meth:`Overlay.apply` changes (copy on write, row by row)."""

    def __init__(self, base: Overlay) -> None:
        self.base = base
        self.live: dict[int, Mapping[int, tuple[float, int]]] = dict(base.live)
        self.by_item: dict[int, Mapping[int, float]] = dict(base.live_by_item)
        self.tombstones = dict(base.tombstones)
        self.forgotten = base.forgotten
        self._own_users: dict[int, dict[int, tuple[float, int]]] = {}
        self._own_items: dict[int, dict[int, float]] = {}
        self.users: set[int] = set()
        self.items: set[int] = set()

    def _user(self, u: int) -> dict[int, tuple[float, int]]:
        own = self._own_users.get(u)
        if own is None:
            own = self._own_users[u] = dict(self.live.get(u, {}))
            self.live[u] = own
        return own

    def _item(self, i: int) -> dict[int, float]:
        own = self._own_items.get(i)
        if own is None:
            own = self._own_items[i] = dict(self.by_item.get(i, {}))
            self.by_item[i] = own
        return own

    def forget(self, user_id: str, seq: int) -> None:
        if seq <= self.tombstones.get(user_id, 0):
            return  # seen before (a tombstone past the last read comes again)
        self.tombstones[user_id] = seq
        ids = self.base.users.ids
        u = ids.find(user_id, ids.n_version + len(ids.new))
        if u < 0:
            return
        if u < ids.n_version and not self.forgotten[u]:
            if self.forgotten is self.base.forgotten:
                self.forgotten = self.forgotten.copy()
            self.forgotten[u] = True
            self.users.add(u)
            self.items.update(self.base.users.version.row_entries(u)[0].tolist())
        for i, (_, at) in list(self.live.get(u, {}).items()):
            if at < seq:
                del self._user(u)[i]
                del self._item(i)[u]
                self.users.add(u)
                self.items.add(i)

    def after(self, user_id: str) -> int:
        """The ``seq`` of ``user_id``'s tombstone after the cutoff (0 for none): rows from events before it are
        gone with it."""
        return self.tombstones.get(user_id, 0)

    def put(self, u: int, i: int, rating: float, seq: int) -> None:
        self._user(u)[i] = (rating, seq)
        self._item(i)[u] = rating
        self.users.add(u)
        self.items.add(i)

    def drop(self, u: int, i: int) -> None:
        if i not in self.live.get(u, {}):
            return
        del self._user(u)[i]
        del self._item(i)[u]
        self.users.add(u)
        self.items.add(i)

    def finish(self, seen: int) -> Overlay:
        base = self.base
        n_users = base.users.ids.n_version + len(base.users.ids.new)
        n_items = base.items.ids.n_version + len(base.items.ids.new)
        users = sorted(self.users)
        items = sorted(self.items)
        user_rows = {u: self._user_row(u, n_items) for u in users}
        item_rows = {i: self._item_row(i, n_users) for i in items}
        total, count = base.total, base.count
        for i, row in item_rows.items():
            before = base.items.row(i)
            total += float(np.sum(row.ratings)) - float(np.sum(before.ratings))
            count += row.others.shape[0] - before.others.shape[0]
        return replace(
            base,
            seen=seen,
            items=_side_after(base.items, item_rows, n_items, n_users),
            users=_side_after(base.users, user_rows, n_users, n_items),
            live=self.live,
            live_by_item=self.by_item,
            tombstones=self.tombstones,
            forgotten=self.forgotten,
            total=total,
            count=count,
            memo={},
        )

    def _user_row(self, u: int, n_items: int) -> Row:
        mine = self.live.get(u, {})
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if u < self.base.users.version.n_rows and not self.forgotten[u]:
            items, ratings = self.base.users.version.row_entries(u)
            keep = ~np.isin(items, np.fromiter(mine, dtype=np.int64, count=len(mine)))
            parts.append((items[keep].astype(np.int64), ratings[keep]))
        parts.append(_live_part(((i, r) for i, (r, _) in mine.items()), len(mine)))
        return _sorted_row(parts, lambda idx: self.base.items.ids.keys(idx, n_items))

    def _item_row(self, i: int, n_users: int) -> Row:
        mine = self.by_item.get(i, {})
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if i < self.base.items.version.n_rows:
            users, ratings = self.base.items.version.row_entries(i)
            keep = ~self.forgotten[users] & ~np.isin(users, np.fromiter(mine, dtype=np.int64, count=len(mine)))
            parts.append((users[keep].astype(np.int64), ratings[keep]))
        parts.append(_live_part(mine.items(), len(mine)))
        return _sorted_row(parts, lambda idx: self.base.users.ids.keys(idx, n_users))


def _live_part(pairs: Iterable[tuple[int, float]], n: int) -> tuple[np.ndarray, np.ndarray]:
    others = np.empty(n, dtype=np.int64)
    ratings = np.empty(n, dtype=np.float64)
    for k, (other, rating) in enumerate(pairs):
        others[k], ratings[k] = other, rating
    return others, ratings


def _sorted_row(parts: list[tuple[np.ndarray, np.ndarray]], keys: Callable[[np.ndarray], np.ndarray]) -> Row:
    others = np.concatenate([p[0] for p in parts])
    ratings = np.concatenate([p[1] for p in parts])
    order = np.argsort(keys(others), kind="stable")
    return Row(others[order], ratings[order])


def _side_after(state: SideState, changed: dict[int, Row], n: int, n_other: int) -> SideState:
    """``state`` with the merged rows ``changed`` (touched now), grown to ``n`` rows and ``n_other`` others."""
    touched = _grown(state.touched, n)
    reached = _grown(state.reached, n_other)
    if not changed:
        return replace(state, n=n, touched=touched, reached=reached)
    ids = np.fromiter(changed, dtype=np.int64, count=len(changed))
    touched[ids] = True
    count, mean, norm = np.zeros(ids.shape[0]), np.zeros(ids.shape[0]), np.zeros(ids.shape[0])
    for k, (r, row) in enumerate(changed.items()):
        reached[row.others] = True
        if r < state.version.n_rows:
            reached[state.version.row_entries(r)[0]] = True
        c, m, s = row_stats(np.array([0, row.others.shape[0]], dtype=np.int64), row.ratings)
        count[k], mean[k], norm[k] = c[0], m[0], s[0]
    rows = dict(state.rows)
    rows.update(changed)
    return replace(
        state, n=n, rows=rows, touched=touched, reached=reached, stats=state.stats.updated(ids, count, mean, norm)
    )


class LiveState:
    """The overlay of one served version, kept up to date with the event store.

    Parameters
    ----------
    start : Overlay
        The version's empty overlay (:meth:`Overlay.start`).
    scale : RatingScale
        The version's rating scale.
    last_seq : callable() -> int, optional
        The store's highest ``seq``; None without an event store (the overlay stays empty).
    changes : callable(after, upto) -> (events, tombstones), optional
        :meth:`chorus.services.similarity.feed.EventFeed.changes`.
    store : str
        The store's name, for messages.
    """

    def __init__(
        self,
        start: Overlay,
        scale: RatingScale,
        last_seq: Callable[[], int] | None = None,
        changes: Callable[[int, int], tuple[list[Event], dict[str, int]]] | None = None,
        store: str = "",
    ) -> None:
        self.current = start
        self.scale = scale
        self._last_seq = last_seq
        self._changes = changes
        self._store = store
        self._lock = threading.Lock()

    def sync(self) -> Overlay:
        """The snapshot with every event the store holds now: one ``last_seq`` query, then, only when it moved,
        the new events and tombstones folded in (one thread at a time; the others wait for it and share it).

        Raises
        ------
        EventsUnavailable : the store cannot be read, or holds fewer events than this version has seen (it
            is not the store the version was trained with or read from).
        """
        if self._last_seq is None or self._changes is None:
            return self.current
        before = self.current  # taken before the store is read: its seq was read from the store earlier
        last = self._last_seq()
        if last < before.seen:
            raise EventsUnavailable(
                f"the event store {self._store} ends at seq {last}, before seq {before.seen} that this service "
                f"{'read' if before.seen > before.cutoff else 'was trained up to'}: it is not the store the "
                "served version was trained with (point CHORUS_EVENTS_URL at that store, or train a new version)"
            )
        snapshot = self.current
        if last <= snapshot.seen:  # another request read as far already
            return snapshot
        with self._lock:
            snapshot = self.current
            if last > snapshot.seen:
                events, tombstones = self._changes(snapshot.seen, last)
                snapshot = self.current = snapshot.apply(events, tombstones, last, self.scale)
        return snapshot

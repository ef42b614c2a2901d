"""Training data from a review dump and the event store (``chorus train --events-url``).

A version trained with events takes a *cutoff*, the store's highest ``seq`` read once before anything else
(:meth:`~chorus.shared.events.store.EventStore.last_seq`), and trains on

* the dump's rows, without every row of a user forgotten up to the cutoff
  (:meth:`~chorus.shared.events.store.EventStore.tombstones`),
* plus the review rows that the events up to the cutoff make (:func:`chorus.shared.events.rows.rows_of`, the rule
  the services fold events in by); an event row replaces the dump's row of the same user and item.

The cutoff goes into the manifest (:data:`chorus.shared.events.rows.CUTOFF_KEY`): the services fold in only the
events after it, so none counts twice. The rows depend on nothing but the dump and the events up to the cutoff:
dump rows keep their file order, event rows follow in the order of their latest event.

An event row that a loader would skip is skipped and counted by reason, as the loaders count a dump's rows: an id
longer than :data:`~chorus.shared.contract.names.MAX_ID_LENGTH` bytes of UTF-8 (``id_too_long``) or holding a NUL
character (``nul_in_id``, which numpy's string arrays cannot hold), a rating that is not a number (``bad_rating``)
or not on the dump's scale (``rating_out_of_scale``; a purchase counts as the scale's middle, which is always
accepted), a timestamp that is not a finite number of seconds (``bad_timestamp``).

Columns the events do not carry take neutral values on event rows: no helpful votes, the review's text for a
``review`` event (else empty), and "verified purchase" when the user's events up to the cutoff hold a purchase of
the item.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from chorus.shared.contract.errors import DataError, InvalidInput, UpstreamUnavailable
from chorus.shared.contract.names import MAX_ID_LENGTH, redact_url
from chorus.shared.data.ratings import MAX_EXAMPLES, Ratings, text_array
from chorus.shared.events.rows import EventRow, purchase_rating, rows_of
from chorus.shared.events.store import Event, EventStore

#: Why an event row can be skipped, in the order the checks run (a row is counted under its first failure).
EVENT_REASONS = ("id_too_long", "nul_in_id", "bad_rating", "rating_out_of_scale", "bad_timestamp")

#: Largest timestamp magnitude accepted (seconds): beyond it a float no longer holds whole seconds exactly.
MAX_TIMESTAMP = 2.0**53


@dataclass
class EventsSummary:
    """What the events did to a version's training data; recorded in its manifest under ``events``.

    Attributes
    ----------
    store : str
        The store's URL, password hidden.
    cutoff : int
        The highest event ``seq`` the version was trained on.
    event_rows : int
        Review rows the events added (after skipping).
    replaced_dump_rows : int
        Rows of the dump that an event row of the same user and item replaced.
    forgotten_users : int
        Users with a tombstone up to the cutoff.
    forgotten_dump_rows : int
        Rows of the dump dropped because their user was forgotten.
    skipped_by_reason : Counter
        Event rows skipped, by reason (:data:`EVENT_REASONS`).
    examples : list of dict
        The first few skipped event rows: ``seq``, reason, user and item (cut to 80 characters).
    """

    store: str
    cutoff: int
    event_rows: int = 0
    replaced_dump_rows: int = 0
    forgotten_users: int = 0
    forgotten_dump_rows: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["skipped_rows"] = sum(self.skipped_by_reason.values())
        out["skipped_by_reason"] = dict(sorted(self.skipped_by_reason.items()))
        return out

    def describe(self) -> str:
        """One line for a person."""
        skipped = sum(self.skipped_by_reason.values())
        return (
            f"events up to seq {self.cutoff:,} from {self.store}: {self.event_rows:,} rows added "
            f"({self.replaced_dump_rows:,} of them replacing a dump row), {self.forgotten_dump_rows:,} dump rows of "
            f"{self.forgotten_users:,} forgotten users dropped, {skipped:,} event rows skipped"
        )


def open_store(url: str, create: bool = False) -> EventStore:
    """The event store at ``url``.

    A SQLite file must exist unless ``create`` (a typo in a path must not train on a new, empty store).

    Raises
    ------
    InvalidInput : not an event store URL, or a SQLite file that does not exist.
    UpstreamUnavailable : the store cannot be reached or opened.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        parsed = None  # EventStore says what is wrong with it
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database and not create:
        if not Path(parsed.database).is_file():
            raise InvalidInput(f"no event store at {parsed.database} (the SQLite file does not exist)")
    try:
        return EventStore(url)
    except sa.exc.SQLAlchemyError as exc:
        raise UpstreamUnavailable(f"cannot open the event store {redact_url(url)}: {_reason(exc)}") from None


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    """The first line of the driver's message (SQLAlchemy's own adds its statement and a link)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_cutoff(store: EventStore) -> int:
    """The store's highest ``seq``: the cutoff of a version trained now.

    Raises
    ------
    UpstreamUnavailable : the store cannot be read.
    """
    try:
        return store.last_seq()
    except sa.exc.SQLAlchemyError as exc:
        raise UpstreamUnavailable(f"cannot read the event store {store.public_url}: {_reason(exc)}") from None


def with_events(ratings: Ratings, store: EventStore, cutoff: int) -> tuple[Ratings, EventsSummary]:
    """``ratings`` (a loaded dump) with the events of ``store`` up to ``cutoff`` (see the module docstring).

    Raises
    ------
    UpstreamUnavailable : the store cannot be read.
    DataError : no row is left (every user of the dump forgotten and no event row).
    """
    purchased: set[tuple[str, str]] = set()
    purchase_seqs: list[int] = []
    texts: dict[int, str] = {}

    def scanned() -> Iterator[Event]:
        for event in store.scan(upto=cutoff):
            if event.kind == "purchase" and event.item_id is not None:
                purchased.add((event.user_id, event.item_id))
                purchase_seqs.append(event.seq)
            elif event.kind == "review" and event.text and ratings.text is not None:
                texts[event.seq] = event.text
            yield event

    try:
        forgotten = store.tombstones(upto=cutoff)
        rows = rows_of(scanned(), purchase_rating(ratings.scale.low, ratings.scale.high))
    except sa.exc.SQLAlchemyError as exc:
        raise UpstreamUnavailable(f"cannot read the event store {store.public_url}: {_reason(exc)}") from None
    summary = EventsSummary(store=store.public_url, cutoff=cutoff)
    merged = merge_rows(
        ratings,
        rows,
        forgotten=set(forgotten),
        purchases=np.array(purchase_seqs, dtype=np.int64),
        purchased=purchased,
        texts=texts,
        summary=summary,
    )
    return merged, summary


def _check_rows(
    rows: list[EventRow], ratings: Ratings, purchases: np.ndarray, summary: EventsSummary
) -> list[EventRow]:
    """The rows a loader would keep; the others counted in ``summary`` (:data:`EVENT_REASONS`)."""
    n = len(rows)
    users = [r.user_id for r in rows]
    items = [r.item_id for r in rows]
    rating = np.array([r.rating for r in rows], dtype=np.float64)
    ts = np.array([r.timestamp for r in rows], dtype=np.float64)
    seq = np.array([r.seq for r in rows], dtype=np.int64)
    quarter = MAX_ID_LENGTH // 4  # a UTF-8 character takes at most 4 bytes

    def long(ids: list[str]) -> np.ndarray:
        return np.array([len(x) > quarter and len(x.encode()) > MAX_ID_LENGTH for x in ids], dtype=bool)

    def nul(ids: list[str]) -> np.ndarray:
        return np.array(["\x00" in x for x in ids], dtype=bool)

    is_purchase = np.isin(seq, purchases)
    with np.errstate(invalid="ignore"):
        checks = (
            ("id_too_long", long(users) | long(items)),
            ("nul_in_id", nul(users) | nul(items)),
            ("bad_rating", ~np.isfinite(rating)),
            ("rating_out_of_scale", np.isfinite(rating) & ~ratings.scale.valid(rating) & ~is_purchase),
            ("bad_timestamp", ~(np.abs(ts) < MAX_TIMESTAMP)),  # also NaN
        )
    alive = np.ones(n, dtype=bool)
    for reason, bad in checks:
        hit = np.flatnonzero(bad & alive)
        alive[hit] = False
        if hit.size:
            summary.skipped_by_reason[reason] += int(hit.size)
            for k in hit[: max(0, MAX_EXAMPLES - len(summary.examples))].tolist():
                summary.examples.append(
                    {"seq": rows[k].seq, "reason": reason, "user_id": users[k][:80], "item_id": items[k][:80]}
                )
    return [rows[k] for k in np.flatnonzero(alive).tolist()]


def _ids(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def _index_in(vocab: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each of ``ids``' index in the sorted ``vocab``, -1 where it is not there."""
    if vocab.size == 0:
        return np.full(ids.shape[0], -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(vocab, ids), vocab.size - 1)
    return np.where(vocab[at] == ids, at, -1).astype(np.int64)


def merge_rows(
    ratings: Ratings,
    rows: list[EventRow],
    forgotten: set[str],
    purchases: np.ndarray | None = None,
    purchased: set[tuple[str, str]] | None = None,
    texts: dict[int, str] | None = None,
    summary: EventsSummary | None = None,
) -> Ratings:
    """The dump's ``ratings`` without the rows of ``forgotten`` users, with ``rows`` (from
    :func:`~chorus.shared.events.rows.rows_of`) added and replacing the dump's rows of the same (user, item).

    Parameters
    ----------
    ratings : Ratings
        The loaded dump.
    rows : list of EventRow
        At most one per (user, item).
    forgotten : set of str
        Users whose dump rows are dropped.
    purchases : int64 (p,), optional
        The ``seq`` of every purchase event: their rows carry the scale's middle, on its grid or not.
    purchased : set of (user, item), optional
        Pairs with a purchase event (their rows are verified purchases).
    texts : dict, optional
        Review text by event ``seq``.
    summary : EventsSummary, optional
        Filled in with the counts (a new one when None).

    Returns
    -------
    Ratings
        Dump rows first, in file order, then the event rows, in order; sorted vocabularies of the ids the rows use.

    Raises
    ------
    DataError : no row is left.
    """
    summary = summary if summary is not None else EventsSummary(store="", cutoff=0)
    purchases = np.zeros(0, dtype=np.int64) if purchases is None else purchases
    purchased = purchased or set()
    texts = texts or {}
    rows = _check_rows(rows, ratings, purchases, summary)
    ev_users, ev_items = _ids([r.user_id for r in rows]), _ids([r.item_id for r in rows])

    dropped_users = np.isin(ratings.user_ids, _ids(sorted(forgotten)))
    gone = dropped_users[ratings.user]
    # an event row replaces the dump's row of its pair: compare pairs by the dump's indices
    old_u, old_i = _index_in(ratings.user_ids, ev_users), _index_in(ratings.item_ids, ev_items)
    known = (old_u >= 0) & (old_i >= 0)
    width = max(1, ratings.n_items)
    replaced = (
        np.isin(ratings.user.astype(np.int64) * width + ratings.item, old_u[known] * width + old_i[known]) & ~gone
    )
    keep = np.flatnonzero(~gone & ~replaced)
    summary.forgotten_users = len(forgotten)
    summary.forgotten_dump_rows = int(gone.sum())
    summary.replaced_dump_rows = int(replaced.sum())
    summary.event_rows = len(rows)
    if keep.size + len(rows) == 0:
        raise DataError("no row is left: every user of the data file was forgotten and no event adds a row")

    used_u = np.unique(ratings.user[keep])
    used_i = np.unique(ratings.item[keep])
    user_ids = np.unique(np.concatenate([ratings.user_ids[used_u].astype(str), ev_users]))
    item_ids = np.unique(np.concatenate([ratings.item_ids[used_i].astype(str), ev_items]))
    user_map = np.full(ratings.n_users, -1, dtype=np.int64)
    user_map[used_u] = np.searchsorted(user_ids, ratings.user_ids[used_u])
    item_map = np.full(ratings.n_items, -1, dtype=np.int64)
    item_map[used_i] = np.searchsorted(item_ids, ratings.item_ids[used_i])

    # every item the dump knows keeps its title, also one whose dump rows all went (replaced or forgotten)
    titles = np.full(item_ids.shape[0], "", dtype=object)
    known_item = _index_in(ratings.item_ids.astype(str), item_ids)
    has = np.flatnonzero(known_item >= 0)
    titles[has] = np.asarray(ratings.titles[known_item[has]].tolist(), dtype=object)

    n_ev = len(rows)
    seqs = [r.seq for r in rows]

    def joined(dump: np.ndarray | None, events: np.ndarray) -> np.ndarray | None:
        return None if dump is None else np.concatenate([dump[keep], events.astype(dump.dtype)])

    text = None
    if ratings.text is not None:
        text = np.empty(keep.size + n_ev, dtype=object)
        text[: keep.size] = ratings.text[keep]
        text[keep.size :] = [texts.get(s, "") for s in seqs]
    return Ratings(
        user=np.concatenate([user_map[ratings.user[keep]], np.searchsorted(user_ids, ev_users)]).astype(np.int32),
        item=np.concatenate([item_map[ratings.item[keep]], np.searchsorted(item_ids, ev_items)]).astype(np.int32),
        rating=np.concatenate([ratings.rating[keep], np.array([r.rating for r in rows], dtype=np.float32)]),
        timestamp=np.concatenate(
            [
                ratings.timestamp[keep],
                np.floor(np.array([r.timestamp for r in rows], dtype=np.float64)).astype(np.int64),
            ]
        ),
        user_ids=user_ids.astype(str),
        item_ids=item_ids.astype(str),
        titles=text_array(titles.tolist()),
        scale=ratings.scale,
        report=ratings.report,
        verified=joined(ratings.verified, np.array([(r.user_id, r.item_id) in purchased for r in rows], dtype=bool)),
        helpful_votes=joined(ratings.helpful_votes, np.zeros(n_ev, dtype=np.int32)),
        total_votes=joined(ratings.total_votes, np.zeros(n_ev, dtype=np.int32)),
        text=text,
    )

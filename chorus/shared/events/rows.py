"""How events become rows of the review data, the one rule that the services (folding events in at once) and
training (retraining on them) share, so that a live answer and a rebuild on the same rows agree.

* ``rating`` and ``review`` events are reviews: their star rating is the row's rating.
* A ``purchase`` carries no rating: it counts as a review at the middle of the rating scale (3 on 1 to 5, see
  :func:`purchase_rating`), a neutral presence for the rating model and a positive one for the rankers and the
  similarity measures, which use who reviewed what. The scale's middle, rather than a mean of the data, because it
  is the same number before and after a retraining adds these rows.
* A ``view`` is no row: it is stored and listed, and the item is kept out of the user's recommendations, but it
  does not say the user liked the item.
* A later row of the same (user, item) replaces an earlier one (the user re-rated), whether the earlier one came
  from the dump or from an event.

A version records the highest event ``seq`` it was trained on (its *cutoff*, :data:`CUTOFF_KEY` in the manifest);
events after the cutoff are folded in live, events up to it are in the version's arrays, so none counts twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chorus.shared.events.store import RATED_KINDS, Event

CUTOFF_KEY = "events_cutoff"
"""The manifest's top-level key holding the cutoff: the highest event ``seq`` a version was trained on."""


@dataclass(frozen=True)
class EventRow:
    """One review row made from events: user, item, star rating, seconds since the epoch, and the ``seq`` of the
    event it came from."""

    user_id: str
    item_id: str
    rating: float
    timestamp: float
    seq: int


def purchase_rating(low: float, high: float) -> float:
    """The rating a purchase counts as on a scale from ``low`` to ``high``: its middle."""
    return (low + high) / 2.0


def rows_of(events: Iterable[Event], purchase: float) -> list[EventRow]:
    """The review rows ``events`` make (see the module docstring), one per (user, item), the latest event's, in
    the order of their latest event (``seq``); ``purchase`` is the rating a purchase counts as
    (:func:`purchase_rating` of the data's scale)."""
    latest: dict[tuple[str, str], EventRow] = {}
    for event in events:
        if event.item_id is None or event.kind not in RATED_KINDS and event.kind != "purchase":
            continue
        stars = float(event.rating) if event.kind in RATED_KINDS and event.rating is not None else purchase
        key = (event.user_id, event.item_id)
        latest.pop(key, None)  # re-inserted last, so the order is that of the latest events
        latest[key] = EventRow(event.user_id, event.item_id, stars, event.timestamp, event.seq)
    return list(latest.values())


def acted_on(events: Iterable[Event]) -> list[str]:
    """Every item the events name, views included, in first-seen order: what a user's recommendations leave out."""
    return list(dict.fromkeys(e.item_id for e in events if e.item_id is not None))


def cutoff_of(manifest: Mapping[str, Any]) -> int:
    """A version's cutoff (0 for a version trained without events)."""
    return int(manifest.get(CUTOFF_KEY, 0) or 0)

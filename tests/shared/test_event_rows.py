"""The one rule by which events become review rows."""

from __future__ import annotations

from chorus.shared.events.rows import acted_on, cutoff_of, purchase_rating, rows_of
from chorus.shared.events.store import Event


def ev(seq: int, user: str, item: str | None, kind: str, rating: float | None = None) -> Event:
    return Event(seq, f"e{seq}", user, item, kind, rating, None, float(seq))


def test_ratings_and_reviews_keep_their_stars_purchases_take_the_given_rating_views_make_no_row():
    rows = rows_of(
        [
            ev(1, "u", "a", "rating", 5.0),
            ev(2, "u", "b", "review", 2.0),
            ev(3, "u", "c", "purchase"),
            ev(4, "u", "d", "view"),
        ],
        purchase=3.5,
    )
    assert [(r.item_id, r.rating, r.seq) for r in rows] == [("a", 5.0, 1), ("b", 2.0, 2), ("c", 3.5, 3)]


def test_the_latest_event_of_a_pair_wins_and_orders_it():
    rows = rows_of(
        [
            ev(1, "u", "a", "rating", 5.0),
            ev(2, "u", "b", "rating", 4.0),
            ev(3, "u", "a", "rating", 1.0),
            ev(4, "w", "a", "purchase"),
        ],
        purchase=3.0,
    )
    assert [(r.user_id, r.item_id, r.rating) for r in rows] == [("u", "b", 4.0), ("u", "a", 1.0), ("w", "a", 3.0)]


def test_tombstones_make_no_row_and_views_are_acted_on():
    events = [ev(1, "u", None, "forget"), ev(2, "u", "a", "view"), ev(3, "u", "b", "purchase"), ev(4, "u", "a", "view")]
    assert [r.item_id for r in rows_of(events, 3.0)] == ["b"]
    assert acted_on(events) == ["a", "b"]


def test_a_version_without_events_has_cutoff_zero():
    assert cutoff_of({}) == 0 and cutoff_of({"events_cutoff": 17}) == 17


def test_a_purchase_counts_as_the_middle_of_the_scale():
    assert purchase_rating(1.0, 5.0) == 3.0 and purchase_rating(0.5, 5.0) == 2.75

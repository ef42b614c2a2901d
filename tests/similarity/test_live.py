"""The similarity service with live events: after a stream through a real event store (SQLite and PostgreSQL),
every answer equals what a version built by the training code on the same rows serves; forgotten users are
unknown; new users and items are answered; items the events cannot affect are answered from the table."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

import chorus.services.similarity.live as live_module
from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.model import SimilarityModel
from chorus.shared.contract.errors import EventsUnavailable, NotFound
from chorus.shared.contract.names import Measure
from chorus.shared.events.store import EventStore, new_event
from tests.similarity.live_data import (
    K,
    live_similar,
    rebuilt,
    rebuilt_similar,
    served,
    write_dump,
)

MEASURES = [m.value for m in Measure]
QUERIES = [(K, 1), (20, 1), (20, 2)]  # from the table, longer than the table, with a floor on common reviewers


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    return served(write_dump(tmp_path_factory.mktemp("live-dump")))


@pytest.fixture
def store(store_url):
    store = EventStore(store_url)
    yield store
    store.close()


@pytest.fixture
def open_model(version):
    """``open_model(url, config=None)``: a model of the version reading ``url``; closed after the test."""
    opened: list[SimilarityModel] = []

    def open_(url: str, config: SimilarityConfig | None = None) -> SimilarityModel:
        opened.append(version.model(url, config))
        return opened[-1]

    yield open_
    for model in opened:
        if model.feed is not None:
            model.feed.close()


def ev(user: str, item: str, kind: str = "rating", rating: float | None = None, text: str | None = None):
    return new_event(user, item, kind, rating=rating, text=text, timestamp=2e9)


def play(store: EventStore, model: SimilarityModel, version, seed: int = 0) -> None:
    """A stream of every kind of change, read by the model between batches as requests would."""
    rng = np.random.default_rng(seed)
    users = [str(u) for u in version.ratings.user_ids]
    items = [str(i) for i in version.ratings.item_ids]

    def some(n: int) -> list[tuple[str, str]]:
        return [(users[rng.integers(len(users))], items[rng.integers(len(items))]) for _ in range(n)]

    stars = lambda: float(rng.integers(1, 11) / 2)  # noqa: E731
    # re-ratings and new pairs of known users and items, purchases, views, reviews; u10 is forgotten later
    batch = [ev(u, i, rating=stars()) for u, i in some(50)]
    batch += [ev(u, i, "purchase") for u, i in some(5)] + [ev(u, i, "view") for u, i in some(5)]
    batch += [ev(u, i, "review", stars(), "good") for u, i in some(3)]
    batch += [ev("u10", i, rating=stars()) for i in items[:4]]
    store.append(batch)
    model.view()
    # users and items only events name, sorting before, between and after the version's ids
    fresh_users, fresh_items = ["u05", "u31", "zz", "a1"], ["i05", "i13", "i99", "h0"]
    batch = []
    for k, u in enumerate(fresh_users):
        picks = [items[(3 * k + j) % len(items)] for j in range(4)] + fresh_items[k % 2 :: 2]
        batch += [ev(u, i, rating=stars()) for i in picks]
    batch += [ev(u, fresh_items[k % 4], rating=stars()) for k, (u, _) in enumerate(some(12))]
    batch += [ev(users[0], items[0], rating=7.0), ev("u77", "i77", rating=2.3)]  # off the scale: no row
    store.append(batch)
    model.view()
    # a user of the dump forgotten; a user with live rows forgotten, then back with new ones
    store.forget(users[2], 2e9)
    store.forget("u10", 2e9)
    store.append([ev("u10", i, rating=stars()) for i in items[5:8]] + [ev("u10", "i99", "purchase")])
    model.view()
    # a live re-rating re-rated, a dump pair rated live then off the scale (its dump row counts again)
    first_pair = next(iter(some(1)))
    store.append([ev(*first_pair, rating=1.0), ev(users[5], items[3], rating=4.5)])
    model.view()
    store.append([ev(*first_pair, rating=5.0), ev(users[5], items[3], rating=9.0)])
    store.forget("zz", 2e9)  # a user only events knew
    store.append([ev(u, i, rating=stars()) for u, i in some(10)])  # read by the next request only


def compare(model: SimilarityModel, ref, side: str) -> int:
    """Every measure's similar-items (or users) answer for every id either knows; returns how many lists."""
    view = model.view()
    state = view.overlay.items if side == "item" else view.overlay.users
    version_ids = [str(x) for x in (view.catalog.item_ids if side == "item" else view.catalog.user_ids)]
    ids = set(version_ids) | set(state.ids.new[: state.n - state.ids.n_version])
    ids |= set(ref.item_ids if side == "item" else ref.user_ids)
    compared = 0
    for raw in sorted(ids):
        for measure in MEASURES:
            for k, min_common in QUERIES:
                got = live_similar(view, side, raw, k, measure, min_common)
                want = rebuilt_similar(ref, side, raw, k, measure, min_common)
                if want is None and got == [] and side == "item" and raw in version_ids:
                    continue  # every reviewer forgotten: the version's item stays, with nothing similar
                assert got == want, f"{side} {raw} {measure} k={k} min_common={min_common}"
                compared += 1
    return compared


def test_a_stream_equals_a_rebuild_on_the_same_rows(store_url, store, version, open_model):
    model = open_model(store_url)
    play(store, model, version)
    ref = rebuilt(version.ratings, store)
    assert compare(model, ref, "item") > 3 * len(QUERIES) * len(ref.item_ids) * 0.9
    assert compare(model, ref, "user") > 0
    # a replica that reads the whole stream at once answers the same
    replica = open_model(store_url)
    assert compare(replica, ref, "item") and compare(replica, ref, "user")


@pytest.mark.parametrize("measure", ["cosine", "jaccard", "pearson"])
def test_recommendations_and_predictions_equal_a_rebuild(store_url, store, version, open_model, measure):
    config = SimilarityConfig(table_k=K, recommend_measure=measure)
    model = open_model(store_url, config)
    play(store, model, version, seed=1)
    ref = rebuilt(version.ratings, store, config)
    view = model.view()
    for u_ref, raw in enumerate(ref.user_ids):
        got = view.recommend(view.user_index(raw), 10)
        want = ref.index.recommend(u_ref, 10)
        assert [view.item_id(i) for i in got.items.tolist()] == [ref.item_ids[i] for i in want.items.tolist()]
        assert got.scores.tolist() == want.scores.tolist(), raw
        assert [view.item_id(i) for i in got.because.tolist()] == [ref.item_ids[i] for i in want.because]
    users = ref.user_ids + ["u04", "nobody"]
    items = ref.item_ids + ["i77"]
    pairs = [(u, i) for u in users for i in items]
    got_p = view.predict([u for u, _ in pairs], [i for _, i in pairs], low=0.5, high=5.0)
    u_idx = np.array([ref.user(u) if ref.user(u) is not None else -1 for u, _ in pairs])
    i_idx = np.array([ref.item(i) if ref.item(i) is not None else -1 for _, i in pairs])
    want_p = ref.index.predict(u_idx, i_idx, low=0.5, high=5.0)
    np.testing.assert_allclose(got_p.rating, want_p.rating, rtol=0, atol=1e-9)
    assert got_p.impossible.tolist() == want_p.impossible.tolist()


def test_forgotten_users_are_unknown_and_new_users_answered(store_url, store, version, open_model):
    model = open_model(store_url)
    dump_user = str(version.ratings.user_ids[3])
    view = model.view()
    assert view.user_index(dump_user) >= 0
    before = set(view.similar_items(view.item_index(str(version.ratings.item_ids[0])), 20)[0].tolist())
    store.forget(dump_user, 2e9)
    view = model.view()
    with pytest.raises(NotFound, match=f"unknown user '{dump_user}'.*forgotten"):
        view.user_index(dump_user)
    for u in range(len(version.ratings.user_ids)):
        if str(version.ratings.user_ids[u]) != dump_user:
            found, _ = view.similar_users(u, 50)
            assert dump_user not in [view.user_id(v) for v in found.tolist()]
    assert view.predict([dump_user], [str(version.ratings.item_ids[0])]).impossible.tolist() == [True]
    # a new user: two ratings make them known, with recommendations, similar users and predictions
    liked = [str(version.ratings.item_ids[i]) for i in (0, 1)]
    store.append([ev("newcomer", liked[0], rating=5.0), ev("newcomer", liked[1], "purchase")])
    view = model.view()
    u = view.user_index("newcomer")
    rec = view.recommend(u, 5)
    assert rec.items.shape[0] == 5 and not {view.item_id(i) for i in rec.items.tolist()} & set(liked)
    assert {view.item_id(b) for b in rec.because.tolist()} <= set(liked)
    assert view.similar_users(u, 5)[0].shape[0] > 0
    assert view.predict(["newcomer"], [str(version.ratings.item_ids[2])]).impossible.tolist() == [False]
    # the same user forgotten in turn, then back: only the new rows count
    store.forget("newcomer", 2e9)
    with pytest.raises(NotFound):
        model.view().user_index("newcomer")
    store.append([ev("newcomer", liked[1], rating=2.0)])
    view = model.view()
    items, ratings = view.overlay.users.row(view.user_index("newcomer"))
    assert [view.item_id(i) for i in items.tolist()] == [liked[1]] and ratings.tolist() == [2.0]
    assert before  # the item had neighbours to begin with


def test_an_item_only_events_name(store_url, store, version, open_model):
    model = open_model(store_url)
    with pytest.raises(NotFound, match="unknown item 'brand-new': not in version v1 and named by no event"):
        model.view().item_index("brand-new")
    raters = [str(u) for u in version.ratings.user_ids[:3]]
    store.append([ev(u, "brand-new", rating=4.0) for u in raters] + [ev("someone", "brand-new", "view")])
    view = model.view()
    i = view.item_index("brand-new")
    assert view.title(i) is None
    assert view.item_public(i) == {"item_id": "brand-new", "title": None, "reviews": 3, "mean_rating": 4.0}
    found, scores = view.similar_items(i, 10, "cosine")
    assert found.shape[0] > 0 and np.all(scores > 0)
    # and it is among the neighbours of what its raters reviewed
    reviewed = view.overlay.users.row(view.user_index(raters[0])).others
    assert i in reviewed.tolist()
    other = int(reviewed[reviewed != i][0])
    assert i in view.similar_items(other, 500, "jaccard")[0].tolist()


def test_items_the_events_cannot_affect_are_answered_from_the_table(store_url, store, version, open_model, monkeypatch):
    """One rating by a new user of one item: the items that share no reviewer with it are clean, and are
    answered by the version's table without building anything; the dirty ones exactly."""
    model = open_model(store_url)
    counts = np.bincount(version.ratings.item, minlength=version.ratings.n_items)
    target = int(np.argmin(counts))  # the least reviewed item: the fewest items share a reviewer with it
    store.append([ev("loner", str(version.ratings.item_ids[target]), rating=3.0)])
    view = model.view()
    items = version.index.items
    reviewers = set(items.row_entries(target)[0].tolist())
    # dirty, by definition: the item itself and every item one of its reviewers (or the new one) reviewed
    dirty = {target} | {i for i in range(items.n_rows) if reviewers & set(items.row_entries(i)[0].tolist())}
    assert {i for i in range(items.n_rows) if view.overlay.items.dirty(i)} == dirty
    clean = sorted(set(range(items.n_rows)) - dirty)
    assert clean, "the stream should leave some item clean"

    def no_local_side(*args, **kwargs):
        raise AssertionError("a clean item must be answered by the version")

    monkeypatch.setattr(live_module, "around", no_local_side)
    for i in clean:
        for measure in MEASURES:
            got = view.similar_items(i, K, measure)
            want = version.index.similar_items(i, K, measure, use_table=True)
            assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    monkeypatch.undo()
    ref = rebuilt(version.ratings, store)
    for i in sorted(dirty):
        raw = str(version.ratings.item_ids[i])
        assert live_similar(view, "item", raw, K, "jaccard", 1) == rebuilt_similar(ref, "item", raw, K, "jaccard", 1)


def test_nothing_new_reads_nothing_but_the_last_seq(store_url, store, version, open_model, monkeypatch):
    model = open_model(store_url)
    store.append([ev(str(version.ratings.user_ids[0]), str(version.ratings.item_ids[1]), rating=1.5)])
    first = model.view().overlay
    assert first.seen == store.last_seq() and first.changed

    def no_scan(*args, **kwargs):
        raise AssertionError("nothing new: no scan")

    monkeypatch.setattr(model.feed, "changes", no_scan)
    model.live._changes = no_scan
    assert model.view().overlay is first


def test_a_store_that_cannot_be_read_fails_loudly(tmp_path, open_model):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for url in (f"sqlite:///{blocker}/events.db", "postgresql://postgres@127.0.0.1:1/nothing"):
        model = open_model(url)
        with pytest.raises(EventsUnavailable, match="the event store .* cannot be read"):
            model.view()
        assert model.feed.problem() is not None


def test_a_store_behind_the_version_is_refused(store_url, store, version, open_model):
    store.append([ev("a", "b", rating=1.0)])
    model = open_model(store_url)
    model.live.current = dataclasses.replace(model.live.current, seen=10, cutoff=10)  # a version trained up to 10
    with pytest.raises(EventsUnavailable, match="ends at seq 1, before seq 10 that this service was trained"):
        model.view()


def test_without_a_store_the_version_answers_alone(version):
    model = version.model(None)
    view = model.view()
    assert not view.overlay.changed and view.overlay.seen == 0
    for i in range(version.index.n_items):
        for measure in MEASURES:
            got, want = view.similar_items(i, K, measure), version.index.similar_items(i, K, measure)
            assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    with pytest.raises(NotFound, match="^unknown user 'nobody'$"):
        view.user_index("nobody")


def test_requests_while_events_arrive(store_url, store, version, open_model):
    """Readers on three threads while a writer appends: no request fails, each answers from one snapshot, and
    the last snapshot equals the rebuild."""
    model = open_model(store_url)
    users = [str(u) for u in version.ratings.user_ids]
    items = [str(i) for i in version.ratings.item_ids]
    stop, errors = threading.Event(), []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            try:
                view = model.view()
                i = int(rng.integers(view.overlay.items.n))
                found, _ = view.similar_items(i, K, MEASURES[seed % 3])
                assert found.size == 0 or found.max() < view.overlay.items.n
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(7)
    try:
        for n in range(30):
            batch = [
                ev(
                    users[rng.integers(len(users))],
                    items[rng.integers(len(items))],
                    rating=float(rng.integers(1, 11) / 2),
                )
                for _ in range(5)
            ]
            batch.append(ev(f"new{n:02d}", f"fresh{n % 4}", rating=4.0))
            store.append(batch)
            if n == 15:
                store.forget(users[1], 2e9)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[0]
    assert compare(model, rebuilt(version.ratings, store), "item")

"""Who reviewed what, lately: :class:`Activity` against hand-made cases and a brute-force reference, and the
similarity service's ``GET /v1/users/{id}`` and ``GET /v1/stats/top`` over a tiny artifact, without and with an
event store (both backends): events are a reviewer's newest reviews at once, and a forgotten reviewer is unknown
and left out of the busiest."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from chorus.services.similarity.activity import RECENT, Activity, day
from chorus.services.similarity.app import create_app
from chorus.services.similarity.settings import Settings
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component
from chorus.shared.data.ratings import LoadReport, Ratings, RatingScale, text_array
from chorus.shared.events.store import EventStore, new_event
from tests.conftest import train_tiny

DAY = 86_400


def ratings_of(user, item, rating, day, n_users, n_items) -> Ratings:
    return Ratings(
        user=np.asarray(user, np.int32),
        item=np.asarray(item, np.int32),
        rating=np.asarray(rating, np.float32),
        timestamp=np.asarray(day, np.int64) * DAY,
        user_ids=np.array([f"U{u}" for u in range(n_users)]),
        item_ids=np.array([f"I{i}" for i in range(n_items)]),
        titles=text_array([f"Item {i}" for i in range(n_items)]),
        scale=RatingScale(1, 5, 1),
        report=LoadReport("test", "test"),
    )


def test_newest_first_ties_by_item_and_at_most_keep():
    # user 0: seven reviews, two on day 9 (items 4 and 2); user 1: one; user 2: none
    r = ratings_of(
        [0, 0, 0, 0, 0, 0, 0, 1],
        [0, 1, 2, 3, 4, 5, 6, 3],
        [5, 4, 3, 2, 1, 5, 4, 2],
        [1, 5, 9, 3, 9, 7, 2, 4],
        3,
        7,
    )
    act = Activity.from_ratings(r, keep=3)
    items, ratings, stamps = act.recent(0)
    assert items.tolist() == [2, 4, 5] and ratings.tolist() == [3, 1, 5]
    assert stamps.tolist() == [9 * DAY, 9 * DAY, 7 * DAY] and day(9 * DAY + 86_399) == "1970-01-10"
    assert act.recent(1)[0].tolist() == [3] and act.recent(2)[0].size == 0
    assert act.reviews.tolist() == [7, 1, 0] and act.mean[0] == pytest.approx(24 / 7) and act.mean[2] == 0
    assert act.busiest.tolist() == [0, 1, 2]


def test_against_a_brute_force_reference():
    rng = np.random.default_rng(3)
    n_users, n_items, n = 40, 30, 500
    cells = rng.choice(n_users * n_items, n, replace=False)
    user, item = cells // n_items, cells % n_items
    day = rng.integers(0, 20, n)  # many ties
    r = ratings_of(user, item, rng.integers(1, 6, n), day, n_users, n_items)
    act = Activity.from_ratings(r)
    for u in range(n_users):
        mine = [(-int(day[k]), int(item[k])) for k in np.flatnonzero(user == u)]
        expected = [i for _, i in sorted(mine)[:RECENT]]
        assert act.recent(u)[0].tolist() == expected
    counts = np.bincount(user, minlength=n_users)
    assert act.busiest.tolist() == sorted(range(n_users), key=lambda u: (-counts[u], u))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("activity-artifacts"), 2000, 3, ["similarity"])


@pytest.fixture(scope="module")
def data(root):
    return load_data_component(ArtifactStore(root).open(components=["data"]))


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as c:
        yield c


def test_top_lists_the_busiest_items_and_users(client, data, root):
    body = client.get("/v1/stats/top", params={"k": 3}).json()
    assert body["version"] == ArtifactStore(root).current()
    item_counts = np.bincount(data.item, minlength=data.n_items)
    user_counts = np.bincount(data.user, minlength=data.n_users)
    assert [d["item_id"] for d in body["items"]] == [
        str(data.item_ids[i]) for i in sorted(range(data.n_items), key=lambda i: (-item_counts[i], i))[:3]
    ]
    assert [d["reviews"] for d in body["items"]] == sorted(item_counts, reverse=True)[:3]
    users = body["users"]
    assert [d["user_id"] for d in users] == [
        str(data.user_ids[u]) for u in sorted(range(data.n_users), key=lambda u: (-user_counts[u], u))[:3]
    ]
    first = data.user_ids.tolist().index(users[0]["user_id"])
    assert users[0]["reviews"] == user_counts[first]
    assert users[0]["mean_rating"] == pytest.approx(float(data.rating[data.user == first].mean()), abs=1e-4)
    assert len(client.get("/v1/stats/top").json()["users"]) == 5
    assert client.get("/v1/stats/top", params={"k": 0}).status_code == 422


def test_a_user_with_their_newest_reviews(client, data):
    u = int(np.argmax(np.bincount(data.user)))
    user_id = str(data.user_ids[u])
    body = client.get(f"/v1/users/{user_id}").json()
    mine = np.flatnonzero(data.user == u)
    assert body["user_id"] == user_id and body["reviews"] == mine.size
    newest = sorted(mine.tolist(), key=lambda k: (-int(data.timestamp[k]), int(data.item[k])))[:RECENT]
    assert [d["item_id"] for d in body["recent"]] == [str(data.item_ids[data.item[k]]) for k in newest]
    assert [d["rating"] for d in body["recent"]] == [float(data.rating[k]) for k in newest]
    first = body["recent"][0]
    assert first["title"] == str(data.titles[data.item_ids.tolist().index(first["item_id"])])
    assert first["date"] == str(np.datetime64(int(data.timestamp[newest[0]]), "s").astype("datetime64[D]"))
    missing = client.get("/v1/users/NO-SUCH")
    assert missing.status_code == 404 and "unknown user 'NO-SUCH'" in missing.json()["detail"]


@pytest.fixture
def store(store_url):
    store = EventStore(store_url)
    yield store
    store.close()


def test_events_are_a_reviewers_newest_reviews_and_forgetting_hides_them(root, data, store, store_url):
    counts = np.bincount(data.user, minlength=data.n_users)
    u = int(np.argmax(counts))
    user_id = str(data.user_ids[u])
    mine = np.flatnonzero(data.user == u)
    newest = sorted(mine.tolist(), key=lambda k: (-int(data.timestamp[k]), int(data.item[k])))
    rerated = str(data.item_ids[data.item[newest[0]]])  # their newest review, rated again
    fresh = next(str(i) for i in data.item_ids.tolist() if i not in {str(data.item_ids[data.item[k]]) for k in mine})
    settings = Settings(artifacts=root, reload_interval=3600, events_url=store_url)
    with TestClient(create_app(settings)) as client:
        before = client.get(f"/v1/users/{user_id}").json()
        store.append(
            [
                new_event(user_id, rerated, "rating", rating=1.0, timestamp=2e9),
                new_event(user_id, fresh, "purchase", timestamp=2e9 + 60),
                new_event(user_id, fresh, "view", timestamp=2e9 + 120),  # a view is no review
            ]
        )
        after = client.get(f"/v1/users/{user_id}").json()
        assert [(d["item_id"], d["rating"]) for d in after["recent"][:2]] == [(fresh, 3.0), (rerated, 1.0)]
        assert after["recent"][0]["date"] == "2033-05-18"
        assert [d["item_id"] for d in after["recent"][2:]] == [d["item_id"] for d in before["recent"][1:4]]
        assert after["reviews"] == before["reviews"] + 1  # the re-rating replaced a review
        assert client.get("/v1/stats/top", params={"k": 1}).json()["users"][0]["user_id"] == user_id

        store.forget(user_id, 2e9 + 200)
        r = client.get(f"/v1/users/{user_id}")
        assert r.status_code == 404 and f"unknown user '{user_id}'" in r.json()["detail"]
        assert user_id not in [d["user_id"] for d in client.get("/v1/stats/top", params={"k": 500}).json()["users"]]
        store.append([new_event(user_id, fresh, "rating", rating=5.0, timestamp=2e9 + 300)])
        back = client.get(f"/v1/users/{user_id}").json()  # named again: only what came after the tombstone
        assert back["reviews"] == 1 and [(d["item_id"], d["rating"]) for d in back["recent"]] == [(fresh, 5.0)]

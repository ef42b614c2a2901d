"""The hit path answers exactly the hits the handlers would, and leaves everything else to FastAPI."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chorus.services.gateway.events import EVERYONE, NO_EVENTS, of_user
from chorus.services.gateway.hitpath import Target, target_of
from chorus.shared.contract.names import MAX_ID_LENGTH
from tests.gateway.conftest import make_client
from tests.gateway.fakes import FakeService


@pytest.fixture(scope="module")
def gateway():
    """One gateway for the module, whose similarity fake finds similar users for any user id."""
    sim, rat = FakeService("similarity", "s1"), FakeService("rating", "r1")
    sim.any_user = True
    with make_client(sim, rat) as client:
        assert isinstance(client.app, FastAPI)
        gw = client.app.state.gateway
        calls = []
        original = gw.get

        async def spy(*args, **kwargs):
            calls.append(args)
            return await original(*args, **kwargs)

        gw.get = spy
        yield client, calls


def test_targets_of_cached_routes_and_the_events_they_depend_on():
    assert target_of("/v1/items/B001/similar", b"") == Target(
        "similarity", "items/B001/similar", "k=10&measure=jaccard&min_common=1", EVERYONE
    )
    assert target_of("/v1/users/U1/similar", b"k=3") == Target(
        "similarity", "users/U1/similar", "k=3&measure=jaccard&min_common=1", of_user("U1")
    )
    assert target_of("/v1/users/a b/recommendations", b"method=similar&k=3") == Target(
        "similarity", "users/a%20b/recommendations", "k=3", of_user("a b")
    )
    assert target_of("/v1/users/U1/recommendations", b"method=similar&exclude=x&exclude=a") == Target(
        "similarity", "users/U1/recommendations", "k=10&exclude=a&exclude=x", of_user("U1")
    )
    assert target_of("/v1/users/U1/recommendations", b"") == Target(
        "rating", "users/U1/recommendations", "k=10", of_user("U1")
    )
    assert target_of("/v1/users/U1/recommendations", b"method=model&k=3") == Target(
        "rating", "users/U1/recommendations", "k=3&method=latent", of_user("U1")
    )
    assert target_of("/v1/users/U1/recommendations", b"exclude=b&method=ease&exclude=a%20c&exclude=b") == Target(
        "rating", "users/U1/recommendations", "k=10&method=ease&exclude=a+c&exclude=b", of_user("U1")
    )
    assert target_of("/v1/items", b"q=guitar+strap") == Target(
        "similarity", "items", "q=guitar+strap&limit=20", EVERYONE
    )
    assert target_of("/v1/items/B 1", b"") == Target("similarity", "items/B%201", "", EVERYONE)
    assert target_of("/v1/predict", b"item_id=I&user_id=U") == Target(
        "rating", "predict", "user_id=U&item_id=I", of_user("U")
    )
    assert target_of("/v1/stats", b"") == Target("similarity", "stats", "", NO_EVENTS)
    for path, query in [
        ("/v1/users/U1/recommendations", b"method=magic"),  # invalid: FastAPI answers 422
        ("/v1/users/U1/recommendations", b"method="),
        ("/v1/users/U1/recommendations", b"method=ease&method=ials"),
        ("/v1/users/U1/recommendations", b"exclude="),
        ("/v1/users/U1/recommendations", b"exclude=" + b"x" * (MAX_ID_LENGTH + 1)),
        ("/v1/users/U1/recommendations", b"exclude=x&" * 501),  # one distinct id, but too many for the API
        ("/v1/items", b""),  # q is required
        ("/v1/predict", b"user_id=U"),
        ("/v1/items/B001/similar", b"k=1&k=2"),  # repeated parameter
        ("/v1/items/B001/similar/extra", b""),
        ("/healthz", b""),
        ("/", b"q=B001"),
    ]:
        assert target_of(path, query) is None, (path, query)


# "." and ".." are left out: the test client resolves them as dot segments before the gateway sees them
ids = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
measures = st.sampled_from(["jaccard", "cosine", "pearson"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    item=ids,
    k=st.one_of(st.none(), st.integers(1, 500)),
    measure=st.one_of(st.none(), measures),
    min_common=st.one_of(st.none(), st.integers(1, 5)),
    users=st.booleans(),
)
def test_second_request_is_answered_by_the_hit_path_with_the_same_bytes(gateway, item, k, measure, min_common, users):
    client, calls = gateway
    params = {name: v for name, v in [("k", k), ("measure", measure), ("min_common", min_common)] if v is not None}
    kind = "users" if users else "items"
    item = item if users else "B001"
    url = f"/v1/{kind}/{quote(item, safe='')}/similar?{urlencode(params)}"
    first = client.get(url, headers={"Cache-Control": "no-cache"})
    before = len(calls)
    again = client.get(url)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    assert again.headers["x-cache"] == "hit" and len(calls) == before  # no handler involved
    assert again.content == first.content
    assert again.headers["x-model-version"] == first.headers["x-model-version"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    exclude=st.lists(st.one_of(st.sampled_from(["B001", "B003", "NOPE"]), ids), max_size=6),
    method=st.one_of(st.none(), st.sampled_from(["ease", "popular", "latent", "model"])),
    order=st.randoms(use_true_random=False),
)
def test_exclude_sets_in_any_order_share_one_entry(gateway, exclude, method, order):
    client, calls = gateway
    params = [("exclude", e) for e in exclude] + ([("method", method)] if method else [])
    first = client.get(f"/v1/users/U1/recommendations?{urlencode(params)}", headers={"Cache-Control": "no-cache"})
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    shuffled = [("exclude", e) for e in exclude] + [("exclude", e) for e in exclude[:1]]  # a repeat, too
    order.shuffle(shuffled)
    if method:
        shuffled.insert(order.randrange(len(shuffled) + 1), ("method", "latent" if method == "model" else method))
    before = len(calls)
    again = client.get(f"/v1/users/U1/recommendations?{urlencode(shuffled)}")
    assert again.headers["x-cache"] == "hit" and again.content == first.content and len(calls) == before


@pytest.mark.parametrize(
    ("url", "spelled_out"),
    [
        ("/v1/items/B001/similar", "/v1/items/B001/similar?min_common=1&measure=jaccard&k=10"),
        ("/v1/users/U1/similar", "/v1/users/U1/similar?k=10&measure=jaccard&min_common=1"),
        ("/v1/users/U1/recommendations", "/v1/users/U1/recommendations?k=10"),
        ("/v1/users/U1/recommendations?method=model", "/v1/users/U1/recommendations?k=10&method=latent"),
        ("/v1/users/U1/recommendations?method=ease", "/v1/users/U1/recommendations?method=ease&k=10"),
        (
            "/v1/users/U1/recommendations?exclude=B003&exclude=B%20004&exclude=NOPE",
            "/v1/users/U1/recommendations?exclude=NOPE&exclude=B003&k=10&exclude=B+004&exclude=B003",
        ),
        ("/v1/users/U1/recommendations?method=similar", "/v1/users/U1/recommendations?k=10&method=similar"),
        ("/v1/items/B002", "/v1/items/B002"),
        ("/v1/items?q=guitar", "/v1/items?limit=20&q=guitar"),
        ("/v1/stats", "/v1/stats"),
        ("/v1/predict?user_id=U1&item_id=B001", "/v1/predict?item_id=B001&user_id=U1"),
    ],
)
def test_handlers_and_hit_path_agree_on_keys_and_defaults(gateway, url, spelled_out):
    client, calls = gateway
    first = client.get(url, headers={"Cache-Control": "no-cache"})
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    before = len(calls)
    second = client.get(spelled_out)
    assert second.headers["x-cache"] == "hit" and second.content == first.content
    assert len(calls) == before


def test_exclude_bounds_are_checked_before_a_hit(gateway):
    client, calls = gateway
    assert client.get("/v1/users/U1/recommendations?exclude=x").status_code == 200
    before = len(calls)
    # the same distinct id, more often than the API allows: refused, never answered from the cache
    response = client.get("/v1/users/U1/recommendations?" + "exclude=x&" * 501)
    assert response.status_code == 422 and len(calls) == before
    repeated = client.get("/v1/users/U1/recommendations?exclude=x&exclude=x")
    assert repeated.headers["x-cache"] == "hit" and len(calls) == before


def test_non_canonical_spellings_are_left_to_fastapi(gateway):
    client, calls = gateway
    client.get("/v1/items/B001/similar?k=10")
    before = len(calls)
    response = client.get("/v1/items/B001/similar?k=010")  # FastAPI reads 10: its handler finds the same entry
    assert response.status_code == 200 and response.headers["x-cache"] == "hit"
    assert len(calls) == before + 1
    invalid = client.get("/v1/items/B001/similar?k=9999")
    assert invalid.status_code == 422 and len(calls) == before + 1  # refused by validation, before any handler


def test_a_miss_is_looked_up_once(gateway):
    client, _ = gateway
    cache = client.app.state.gateway.cache
    lookups = []
    original = cache.get

    async def counting(key):
        lookups.append(key)
        return await original(key)

    cache.get = counting
    try:
        client.get("/v1/items/B003/similar?k=7")
    finally:
        cache.get = original
    assert len(lookups) == 1

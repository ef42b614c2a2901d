"""The web page in real headless Chromium, against the real three services started by ``chorus up``'s launcher.

A user types into the page's forms and reads the tables; every number the page shows is checked against what the
gateway's JSON API answers for the same question (the page renders exactly those answers), and the "because you
liked" items against the user's own reviews in the training data.
"""

from __future__ import annotations

import shutil
from typing import Any, cast

import httpx
import numpy as np
import pytest
import redis

from tests.e2e.conftest import start_topology
from tests.gateway.processes import chromium_missing, chromium_page
from tests.redis_urls import E2E_REDIS_URL

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.timeout(120),  # includes starting the services and the browser (module fixtures)
    pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing())),
]

PAGE_K = 10  # the page's default "How many"
PAGE_SEARCH_LIMIT = 10  # matches the page asks the search for


@pytest.fixture(scope="module")
def gateway(trained, tmp_path_factory):
    """The three services on loopback with the machine's Redis (the e2e database, tests/redis_urls.py), shared by
    this module's tests."""
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(trained, root / "artifacts")
    url = E2E_REDIS_URL
    redis.Redis.from_url(url).flushdb()
    topo = start_topology(root / "artifacts", url, root / "logs")
    try:
        yield topo.url()
    finally:
        topo.stop_all()
        redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def browser(gateway):
    """One headless Chromium page for the module, and a list of every failed load of the page or its assets."""
    failures: list[str] = []
    with chromium_page() as page:
        page.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: failures.append(f"failed {r.url}: {r.failure}"))
        page.on("pageerror", lambda e: failures.append(f"script error: {e}"))
        yield page, failures


@pytest.fixture
def page(browser, gateway):
    """The page, freshly at ``/``; no load may fail during the test."""
    page, failures = browser
    failures.clear()
    page.goto(gateway + "/")
    yield page
    assert failures == [], "the page or one of its assets failed to load"


@pytest.fixture(scope="module")
def api(gateway):
    with httpx.Client(base_url=gateway, timeout=15) as client:

        def get(path: str, **params) -> dict[str, Any]:
            r = client.get(path, params=params)
            assert r.status_code == 200, f"{path} {params}: {r.status_code} {r.text}"
            return cast(dict[str, Any], r.json())

        yield get


# --- what a user does and sees -------------------------------------------------------------------------------


def submit(page, field: str, value: str, button: str | None = None) -> None:
    """Type ``value`` into ``field`` and submit its form (click ``button``, or press Enter); wait for the answer."""
    page.fill(field, value)
    with page.expect_navigation(wait_until="load"):
        if button:
            page.click(button)
        else:
            page.press(field, "Enter")


def rows(page, table: str) -> list[list[str]]:
    """The visible text of each cell of each body row of ``table``."""
    return cast(
        list[list[str]],
        page.eval_on_selector_all(
            f"{table} tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))"
        ),
    )


def similar_rows(answer: dict[str, Any]) -> list[list[str]]:
    """How the page shows a similar-items answer of the API."""
    return [
        [str(n), hit["title"] or "(no title)", hit["item_id"], f"{hit['score']:.4f}"]
        for n, hit in enumerate(answer["data"], 1)
    ]


def popular_item(dataset) -> str:
    counts = np.bincount(dataset.item, minlength=dataset.n_items)
    return str(dataset.item_ids[int(np.argmax(counts))])


def active_user(dataset) -> str:
    counts = np.bincount(dataset.user, minlength=dataset.n_users)
    return str(dataset.user_ids[int(np.argmax(counts))])


def title_of(dataset, item_id: str) -> str:
    return str(dataset.titles[dataset.item_ids.tolist().index(item_id)])


# --- the tests -----------------------------------------------------------------------------------------------


def test_title_words_show_the_matches_and_the_similar_items_under_the_chosen_measure(page, api, dataset):
    word = title_of(dataset, popular_item(dataset)).split()[0].lower()  # a brand, typed in lower case
    found = api("/v1/items", q=word, limit=PAGE_SEARCH_LIMIT)["data"]
    assert len(found) > 1, f"the demo data should have several “{word}” products"
    first = found[0]

    for measure in ("cosine", "pearson"):
        page.select_option("#measure", measure)
        submit(page, "#q", word, "#similar-submit")
        assert page.input_value("#measure") == measure and page.input_value("#q") == word
        assert f"products match “{word}”; showing the first" in page.inner_text("#similar-note")
        others = page.eval_on_selector_all("#similar-matches li code", "cs => cs.map(c => c.innerText)")
        assert others == [hit["item_id"] for hit in found[1:]]
        heading = page.inner_text("#similar-item")
        assert first["title"] in heading and first["item_id"] in heading and f"({measure})" in heading
        expected = api(f"/v1/items/{first['item_id']}/similar", k=PAGE_K, measure=measure, min_common=1)
        assert expected["data"], "the most reviewed product should have neighbours"
        assert rows(page, "#similar-results") == similar_rows(expected)

    # every word of one title: exactly that product, no list of other matches
    other = found[1]
    submit(page, "#q", other["title"])
    assert other["item_id"] in page.inner_text("#similar-item")
    assert page.locator("#similar-note").count() == 0
    expected = api(f"/v1/items/{other['item_id']}/similar", k=PAGE_K, measure="pearson", min_common=1)
    assert rows(page, "#similar-results") == similar_rows(expected)


def test_a_product_id_shows_its_similar_items_and_they_link_on(page, api, dataset):
    item = popular_item(dataset)
    facts = api(f"/v1/items/{item}")
    page.fill("#k", "5")
    submit(page, "#q", item, "#similar-submit")
    heading = page.inner_text("#similar-item")
    assert facts["title"] in heading and item in heading and f"{facts['reviews']} reviews" in heading
    assert page.input_value("#measure") == "jaccard"
    expected = api(f"/v1/items/{item}/similar", k=5, measure="jaccard", min_common=1)
    shown = rows(page, "#similar-results")
    assert shown == similar_rows(expected) and len(shown) == 5
    assert item not in [row[2] for row in shown]

    # following a result's link asks about that product, keeping the measure and the number asked for
    neighbour = shown[0][2]
    with page.expect_navigation(wait_until="load"):
        page.click(f"#similar-results a:has-text('{neighbour}')")
    assert neighbour in page.inner_text("#similar-item") and page.input_value("#q") == neighbour
    expected = api(f"/v1/items/{neighbour}/similar", k=5, measure="jaccard", min_common=1)
    assert rows(page, "#similar-results") == similar_rows(expected)


def test_least_reviewers_in_common_narrows_the_similar_items_and_is_kept_when_following_a_link(page, api, dataset):
    item = popular_item(dataset)

    def similar(m: int) -> dict[str, Any]:
        return cast(dict[str, Any], api(f"/v1/items/{item}/similar", k=PAGE_K, measure="pearson", min_common=m))

    # the least threshold that changes the list (significance weighting already ranks well-supported items first)
    least = next(m for m in (2, 3, 5, 8, 13, 21, 34) if similar(m)["data"] != similar(1)["data"])
    expected = similar(least)
    assert expected["data"], f"min_common={least} leaves no neighbour of the most reviewed product"
    page.select_option("#measure", "pearson")
    page.fill("#min_common", str(least))
    submit(page, "#q", item, "#similar-submit")
    assert page.input_value("#min_common") == str(least) and page.input_value("#measure") == "pearson"
    assert f"at least {least} reviewers in common" in page.inner_text("#similar-item")
    shown = rows(page, "#similar-results")
    assert shown == similar_rows(expected)

    neighbour = shown[0][2]
    with page.expect_navigation(wait_until="load"):
        page.click(f"#similar-results a:has-text('{neighbour}')")
    assert page.input_value("#min_common") == str(least) and neighbour in page.inner_text("#similar-item")
    expected = api(f"/v1/items/{neighbour}/similar", k=PAGE_K, measure="pearson", min_common=least)
    assert rows(page, "#similar-results") == similar_rows(expected)


def ranked_rows(answer: dict[str, Any], reason: str) -> list[list[str]]:
    """How the page shows a ranked answer of the API: the reasons after ``reason``, stars for predicted ratings."""
    stars = answer["model"] == "latent"
    return [
        [
            str(n),
            hit["title"] or "(no title)",
            hit["item_id"],
            f"{reason} " + ", ".join(b["title"] or b["item_id"] for b in hit["because"]) if hit["because"] else "",
            f"{hit['score']:.2f} ★" if stars else f"{hit['score']:.4g}",
        ]
        for n, hit in enumerate(answer["data"], 1)
    ]


def test_a_user_id_shows_the_default_recommendations_with_reasons_and_because_you_liked(page, api, dataset):
    user = active_user(dataset)
    submit(page, "#user-id", user, "#user-submit")

    model = api(f"/v1/users/{user}/recommendations", k=10)
    assert model["fallback"] is None and model["data"]
    assert rows(page, "#model-results") == ranked_rows(model, "because you reviewed")

    because = api(f"/v1/users/{user}/recommendations", k=10, method="similar")
    assert because["data"]
    shown = rows(page, "#because-results")
    assert shown == [
        [str(n), hit["title"], hit["item_id"], f"because you liked {hit['because']['title']}", f"{hit['score']:.3f}"]
        for n, hit in enumerate(because["data"], 1)
    ]
    # "because you liked X": X is one of this user's reviews, and what is recommended is not
    reviewed = set(dataset.item_ids[dataset.item[dataset.user_ids[dataset.user] == user]].tolist())
    assert {hit["because"]["item_id"] for hit in because["data"]} <= reviewed
    assert not {row[2] for row in shown} & reviewed
    assert not {hit["item_id"] for hit in model["data"]} & reviewed
    assert all({b["item_id"] for b in hit["because"] or []} <= reviewed for hit in model["data"])


def test_a_basket_shows_its_recommendations_and_the_ids_it_does_not_know(page, dataset):
    counts = np.bincount(dataset.item, minlength=dataset.n_items)
    basket = [str(dataset.item_ids[i]) for i in np.argsort(-counts, kind="stable")[:2]]
    submit(page, "#basket-items", f"{basket[0]}, NO-SUCH-ITEM {basket[1]}", "#basket-submit")
    answer = httpx.post(
        page.url.split("/?")[0] + "/v1/recommendations", json={"items": [*basket, "NO-SUCH-ITEM"], "k": 10}
    ).json()
    assert answer["unknown_items"] == ["NO-SUCH-ITEM"] and answer["data"]
    assert page.inner_text("#basket-unknown") == "Not known, left out: NO-SUCH-ITEM."
    assert rows(page, "#basket-results") == ranked_rows(answer, "because of")
    assert not {row[2] for row in rows(page, "#basket-results")} & set(basket)


def test_unknown_ids_and_empty_searches_get_clear_messages(page):
    submit(page, "#q", "NO-SUCH-ITEM", "#similar-submit")
    assert "No product has the id or title words “NO-SUCH-ITEM”" in page.inner_text("#similar-message")
    assert page.locator("#similar-results").count() == 0

    submit(page, "#q", "zzyzx qwertyuiop")
    assert "No product has the id or title words “zzyzx qwertyuiop”" in page.inner_text("#similar-message")

    submit(page, "#q", "", "#similar-submit")
    assert page.inner_text("#similar-message") == "Type a product id or some words of a product title."

    submit(page, "#user-id", "NO-SUCH-USER", "#user-submit")
    assert page.inner_text("#model-note").startswith("We do not know user “NO-SUCH-USER” yet, so these are popular")
    assert len(rows(page, "#model-results")) > 0
    assert page.inner_text("#because-message") == "No user has the id “NO-SUCH-USER”."
    assert page.locator("#because-results").count() == 0

    submit(page, "#user-id", "", "#user-submit")
    assert page.inner_text("#user-message") == "Type a user id."
    assert page.locator("#model-results").count() == 0


def test_the_review_box_scores_a_review_like_the_api(page):
    text = "Five Stars\nexcellent superb tone, flawless"
    page.fill("#review-text", text)
    page.select_option("#review-stars", "5")
    with page.expect_navigation(wait_until="load"):
        page.click("#score-submit")
    answer = httpx.post(page.url.split("/?")[0] + "/v1/reviews/score", json={"text": text, "rating": 5}).json()
    assert page.inner_text("#score-rating") == f"{answer['predicted_rating']:.2f} ★"
    assert page.inner_text("#score-verified") == f"{answer['verified_probability']:.2f}"
    assert rows(page, "#score-terms") == [[t["term"], f"{t['weight']:+.3f}"] for t in answer["top_terms"]]
    assert page.input_value("#review-text") == text and answer["predicted_rating"] > 4

    with page.expect_navigation(wait_until="load"):
        page.fill("#review-text", "   ")
        page.click("#score-submit")
    assert page.inner_text("#score-message") == "Type the text of a review."

"""The web page in real headless Chromium, against the real three services started by ``chorus up``'s launcher.

A shopper searches (with suggestions), opens products, adds them to the basket, looks at a reviewer's page and
scores a review, at a desktop width and at a 375 px phone width. What the page lists is checked against the
gateway's JSON API (the page renders those answers) and, for the reasons it gives in words ("12 people reviewed
both", "recently reviewed"), against the training data itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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
    pytest.mark.timeout(180),  # includes starting the services and the browser (module fixtures)
    pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing())),
]

PAGE_K = 10  # products per list on the page
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


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
        # a suggestion still being fetched when the page moves on is cancelled by the browser: not a failure
        page.on(
            "requestfailed",
            lambda r: (
                None
                if r.resource_type == "fetch" and "ERR_ABORTED" in (r.failure or "")
                else failures.append(f"failed {r.url}: {r.failure}")
            ),
        )
        page.on("pageerror", lambda e: failures.append(f"script error: {e}"))
        yield page, failures


@pytest.fixture(params=["desktop", "phone"])
def page(request, browser, gateway) -> Iterator[Any]:
    """The page, freshly at ``/`` with an empty basket, at a desktop and at a phone width; no load may fail, and
    nothing on the page may be wider than the window."""
    page, failures = browser
    failures.clear()
    page.set_viewport_size(DESKTOP if request.param == "desktop" else PHONE)
    page.goto(gateway + "/")
    page.evaluate("localStorage.clear(); sessionStorage.clear()")
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


# --- what a shopper does and sees ------------------------------------------------------------------------------


def submit(page, field: str, value: str, button: str | None = None) -> None:
    """Type ``value`` into ``field`` and submit its form (click ``button``, or press Enter); wait for the answer."""
    page.fill(field, value)
    with page.expect_navigation(wait_until="load"):
        if button:
            page.click(button)
        else:
            page.press(field, "Enter")


def click(page, selector: str) -> None:
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def ids(page, list_id: str) -> list[str]:
    """The product ids of a list on the page, in order."""
    return cast(list[str], page.eval_on_selector_all(f"#{list_id} > li", "lis => lis.map(l => l.dataset.itemId)"))


def cards(page, list_id: str) -> list[dict[str, str]]:
    """Title, facts and reason of each product of a list."""
    return cast(
        list[dict[str, str]],
        page.eval_on_selector_all(
            f"#{list_id} > li",
            """lis => lis.map(l => {
                const said = s => (l.querySelector(s) || {textContent: ''}).textContent.replace(/\\s+/g, ' ').trim();
                return {title: said('.title'), facts: said('.facts'), reason: said('.reason')};
            })""",
        ),
    )


def said(page, selector: str) -> str:
    """The text of an element as a screen reader reads it: every text, visible or for screen readers only, with
    white space collapsed."""
    return cast(str, page.eval_on_selector(selector, "e => e.textContent.replace(/\\s+/g, ' ').trim()"))


def assert_fits(page) -> None:
    """Nothing is wider than the window: no horizontal scrolling, no element past the right edge."""
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wide = page.evaluate(
        """w => Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > w + 0.5)
            .map(e => e.tagName + '#' + e.id + '.' + e.className)""",
        width,
    )
    assert wide == []


def stars(mean: float) -> str:
    return f"★ {mean:.1f} out of 5"


def counted(n: int) -> str:
    return f"{n:,} review{'' if n == 1 else 's'}"


def busiest(counts: np.ndarray) -> list[int]:
    """Indices by count, most first, ties by index (the similarity service's order)."""
    return sorted(range(counts.size), key=lambda k: (-int(counts[k]), k))


# --- the tests -----------------------------------------------------------------------------------------------


def test_home_offers_the_served_datas_popular_products_and_busiest_reviewer(page, api, dataset):
    items = busiest(np.bincount(dataset.item, minlength=dataset.n_items))[:5]
    users = busiest(np.bincount(dataset.user, minlength=dataset.n_users))
    assert ids(page, "popular-results") == [str(dataset.item_ids[i]) for i in items]
    first = api(f"/v1/items/{dataset.item_ids[items[0]]}")
    assert cards(page, "popular-results")[0] == {
        "title": first["title"],
        "facts": f"{stars(first['mean_rating'])} · {counted(first['reviews'])}",
        "reason": f"One of the most reviewed: {counted(first['reviews'])}",
    }
    busy = str(dataset.user_ids[users[0]])
    assert page.get_attribute("#user-id", "placeholder") == f"e.g. {busy}"
    assert page.inner_text("#example-users li:first-child").startswith(f"Reviewer {busy}")
    assert page.get_attribute("#q", "placeholder") == "e.g. " + " ".join(first["title"].split()[:2])
    assert_fits(page)


def test_search_suggests_titles_lists_matches_and_opens_a_product(page, api, dataset):
    word = str(dataset.titles[int(np.argmax(np.bincount(dataset.item)))]).split()[0].lower()  # a brand
    page.focus("#q")
    page.keyboard.type(word)
    expected = [d["title"] for d in api("/v1/items", q=word, limit=8)["data"]]
    page.wait_for_function("n => document.querySelectorAll('#suggestions option').length === n", arg=len(expected))
    assert page.eval_on_selector_all("#suggestions option", "os => os.map(o => o.value)") == expected
    with page.expect_navigation(wait_until="load"):
        page.press("#q", "Enter")
    found = api("/v1/items", q=word, limit=11)["data"]
    assert len(found) > 10, f"the demo data should have many “{word}” products"
    assert page.inner_text("#view-title") == f"More than 10 products match “{word}”"
    assert ids(page, "search-results") == [d["item_id"] for d in found[:10]]
    assert_fits(page)

    chosen = found[1]
    click(page, "#search-results > li:nth-child(2) .title")
    assert page.inner_text("#view-title") == chosen["title"]
    assert said(page, "#item-facts") == (
        f"{stars(chosen['mean_rating'])} average from {counted(chosen['reviews'])} · product id {chosen['item_id']}"
    )
    assert page.url.endswith(f"/?item={chosen['item_id']}")
    # a suggestion is a whole title: searching for it opens that product
    submit(page, "#q", found[0]["title"], "#search-submit")
    assert page.inner_text("#view-title") == found[0]["title"]
    assert page.inner_text("#view-note") == f"The product that matches “{found[0]['title']}”."


def test_a_product_lists_the_products_reviewed_by_the_same_people_with_the_number_of_them(page, gateway, api, dataset):
    i = int(np.argmax(np.bincount(dataset.item)))
    item = str(dataset.item_ids[i])
    page.goto(f"{gateway}/?item={item}")
    expected = api(f"/v1/items/{item}/similar", k=PAGE_K, measure="jaccard", min_common=1)["data"]
    assert expected and ids(page, "similar-results") == [h["item_id"] for h in expected]
    reviewers = {int(u) for u in dataset.user[dataset.item == i]}
    for card, hit in zip(cards(page, "similar-results"), expected, strict=True):
        j = dataset.item_ids.tolist().index(hit["item_id"])
        both = len(reviewers & {int(u) for u in dataset.user[dataset.item == j]})  # counted from the data
        assert card["reason"] == f"{both:,} {'person' if both == 1 else 'people'} reviewed both"
        assert card["title"] == hit["title"]
    strengths = page.eval_on_selector_all("#similar-results meter", "ms => ms.map(m => m.value)")
    best = expected[0]["score"]
    assert strengths == pytest.approx([round(h["score"] / best, 3) for h in expected], abs=1e-3)
    assert page.inner_text("#similar-details").startswith("Details: jaccard similarity over reviewers.")
    assert_fits(page)

    # the options: another measure and a least number of reviewers in common, kept when following a link
    page.click("#similar-options summary")
    page.select_option("#measure", "pearson")
    page.fill("#min_common", "3")
    click(page, "#similar-submit")
    expected = api(f"/v1/items/{item}/similar", k=PAGE_K, measure="pearson", min_common=3)["data"]
    assert expected and ids(page, "similar-results") == [h["item_id"] for h in expected]
    assert {c["reason"] for c in cards(page, "similar-results")} == {"People who reviewed both rated them alike"}
    neighbour = expected[0]["item_id"]
    click(page, "#similar-results > li:first-child .title")
    assert page.input_value("#min_common") == "3" and page.input_value("#measure") == "pearson"
    expected = api(f"/v1/items/{neighbour}/similar", k=PAGE_K, measure="pearson", min_common=3)["data"]
    assert ids(page, "similar-results") == [h["item_id"] for h in expected]


def test_a_reviewer_sees_recent_reviews_and_recommendations_with_reasons(page, api, dataset):
    u = busiest(np.bincount(dataset.user, minlength=dataset.n_users))[0]
    user = str(dataset.user_ids[u])
    click(page, "#user-example a")
    assert page.inner_text("#reviewer-title") == f"Reviewer {user}"
    rows = np.flatnonzero(dataset.user == u)
    newest = sorted(rows.tolist(), key=lambda k: (-int(dataset.timestamp[k]), int(dataset.item[k])))[:5]
    shown = page.eval_on_selector_all("#recent li", "lis => lis.map(l => l.textContent.replace(/\\s+/g, ' ').trim())")
    assert shown == [
        f"{dataset.titles[dataset.item[k]]} {'★' * int(dataset.rating[k])}{'☆' * (5 - int(dataset.rating[k]))} "
        f"rated {int(dataset.rating[k])} out of 5 "
        f"{np.datetime64(int(dataset.timestamp[k]), 's').astype('datetime64[D]')}"
        for k in newest
    ]

    model = api(f"/v1/users/{user}/recommendations", k=PAGE_K)
    assert model["fallback"] is None and model["data"]
    assert ids(page, "model-results") == [h["item_id"] for h in model["data"]]
    for card, hit in zip(cards(page, "model-results"), model["data"], strict=True):
        if hit["because"]:
            names = [b["title"] or b["item_id"] for b in hit["because"]]
            said = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            assert card["reason"] == f"Because you reviewed {said}"
    assert page.inner_text("#model-details").startswith(f"Details: ranked by the {model['model']} model.")
    because = api(f"/v1/users/{user}/recommendations", k=PAGE_K, method="similar")["data"]
    assert ids(page, "because-results") == [h["item_id"] for h in because]
    assert [c["reason"] for c in cards(page, "because-results")] == [
        f"Because you liked {h['because'][0]['title']}" for h in because
    ]
    reviewed = {str(dataset.item_ids[dataset.item[k]]) for k in rows.tolist()}
    assert not set(ids(page, "model-results")) & reviewed and not set(ids(page, "because-results")) & reviewed
    assert_fits(page)


def test_an_unknown_reviewer_gets_one_message_and_popular_products(page):
    submit(page, "#user-id", "NO-SUCH-USER", "#user-submit")
    assert (
        page.inner_text("#user-message") == "We do not know reviewer “NO-SUCH-USER”. Here are popular products instead."
    )
    assert page.inner_text("#model-title") == "Popular products" and ids(page, "model-results")
    assert page.locator(".message").count() == 1
    submit(page, "#user-id", "", "#user-submit")
    assert page.inner_text("#user-message") == "Type a reviewer id."


def test_the_basket_keeps_its_products_across_pages_and_visits(page, gateway, dataset):
    base = gateway
    top = busiest(np.bincount(dataset.item, minlength=dataset.n_items))
    first = str(dataset.item_ids[top[0]])
    click(page, f"#popular-results > li[data-item-id='{first}'] form.add button")
    assert ids(page, "basket-items") == [first] and page.inner_text("#basket-count") == "1"
    assert "add=" not in page.url  # reloading adds nothing
    click(page, f"#popular-results > li[data-item-id='{first}'] .title")  # another page: the basket stays
    assert ids(page, "basket-items") == [first]
    click(page, "#similar-results > li:first-child form.add button")
    basket = ids(page, "basket-items")
    assert basket[0] == first and len(basket) == 2
    answer = httpx.post(base + "/v1/recommendations", json={"items": basket, "k": PAGE_K}).json()
    assert answer["data"] and ids(page, "basket-results") == [h["item_id"] for h in answer["data"]]
    assert not set(ids(page, "basket-results")) & set(basket)
    assert_fits(page)

    page.goto(base + "/")  # a new visit, with no basket in the address: the browser remembers it
    page.wait_for_selector("#basket-items")
    assert ids(page, "basket-items") == basket
    click(page, f"#basket-items > li[data-item-id='{first}'] button")
    assert ids(page, "basket-items") == basket[1:]
    click(page, "#basket-items > li button")
    assert page.inner_text("#basket-message").startswith("Your basket is empty")
    page.goto(base + "/")
    assert page.inner_text("#basket-message").startswith("Your basket is empty")  # emptied, not restored


def test_the_review_box_scores_a_review_like_the_api(page, gateway):
    text = "Great strings, bright tone, stayed in tune."
    page.fill("#review-text", text)
    page.select_option("#review-stars", "5")
    click(page, "#score-submit")
    answer = httpx.post(gateway + "/v1/reviews/score", json={"text": text, "rating": 5}).json()
    assert page.inner_text("#score-rating") == f"{answer['predicted_rating']:.1f} out of 5"
    assert answer["predicted_rating"] >= 4  # the demo data's text model reads praise
    raised = [t["term"] for t in answer["top_terms"] if t["weight"] > 0]
    assert page.inner_text("#score-raised") == "Words that raised it: " + ", ".join(raised)
    assert page.input_value("#review-text") == text
    page.fill("#review-text", "   ")
    click(page, "#score-submit")
    assert page.inner_text("#score-message") == "Type the text of a review."


def test_a_keyboard_reaches_the_results_and_the_basket(page):
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "view"
    page.keyboard.press("Tab")  # the first product's link, then its button
    page.keyboard.press("Tab")
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert label.startswith("Add to basket: ")
    with page.expect_navigation(wait_until="load"):
        page.keyboard.press("Enter")
    assert page.inner_text("#basket-count") == "1"
    unlabelled = page.evaluate(
        """Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
            .filter(e => !e.labels.length).map(e => e.id)"""
    )
    assert unlabelled == []

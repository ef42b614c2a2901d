"""The web page at ``/``, rendered by the gateway against fakes of both services (no browser here)."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import httpx

from tests.gateway import fakes
from tests.gateway.conftest import make_client


def text(response: httpx.Response) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text)))


def part(response: httpx.Response, element_id: str) -> str:
    """The visible text of the element with ``element_id`` (up to its closing tag of the same name)."""
    m = re.search(rf'<(\w+)[^>]*\bid="{element_id}"', response.text)
    assert m, f"no #{element_id} on the page"
    tag, start = m.group(1), m.start()
    end = response.text.index(f"</{tag}>", start)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text[start:end]))).strip()


def listed(response: httpx.Response, list_id: str) -> list[str]:
    """The product ids of a list, in order."""
    html = response.text
    start = html.index(f'id="{list_id}"')
    end = html.index("</ol>", start) if "<ol" in html[start - 40 : start] else html.index("</ul>", start)
    return re.findall(r'data-item-id="([^"]+)"', html[start:end])


def test_home_shows_the_served_datas_popular_products_and_reviewers_as_examples(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert listed(response, "popular-results") == ["B001", "B002", "B003", "B 004"]
    assert "One of the most reviewed: 12 reviews" in part(response, "popular-results")
    assert part(response, "example-users").startswith("Reviewer U1 · 2 reviews")
    assert 'placeholder="e.g. U1"' in response.text  # the busiest reviewer of the served data
    assert 'placeholder="e.g. Fender Medium"' in response.text  # words of the most reviewed title
    assert 'placeholder="e.g. B001"' in response.text
    assert "B0002E1G5C" not in response.text and "A2IBPI20UZIR0U" not in response.text
    for marker in ['id="search-form"', 'role="search"', 'id="user-form"', 'id="score-form"', 'id="basket-form"']:
        assert marker in response.text
    for asset in ("/static/style.css", "/static/page.js"):
        assert asset in response.text and client.get(asset).status_code == 200


def test_every_field_has_a_label_and_every_button_a_name(client):
    html = client.get("/", params={"item": "B001", "user": "U1", "basket": "B002"}).text
    fields = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html)
    assert len(fields) >= 8
    for field_id in fields:
        assert f'<label for="{field_id}"' in html, field_id
    for button in re.findall(r"<button[^>]*>(.*?)</button>", html, re.S):
        assert button.strip()
    assert html.count('aria-label="Add to basket: ') >= 2
    assert 'aria-label="Remove from basket: Leather Guitar Strap"' in html
    assert '<a class="skip" href="#view">' in html and '<html lang="en">' in html


def test_a_product_shows_its_facts_and_the_products_reviewed_by_the_same_people(client, sim):
    response = client.get("/", params={"item": "B001"})
    assert part(response, "view-title") == "Fender Medium Picks, 12 Pack"
    assert part(response, "item-facts") == "★ 4.5 out of 5 average from 12 reviews · product id B001"
    assert listed(response, "similar-results") == ["B002", "B003", "B 004"]
    shown = part(response, "similar-results")
    # Jaccard 1/2 with 12 and 8 reviewers: 1/2 · 20 / (3/2) ≈ 6.7 people reviewed both; 1/3 with 5: 4.25
    assert "Leather Guitar Strap ★ 4.2 out of 5 · 8 reviews 7 people reviewed both" in shown
    assert "Clip-on Guitar Tuner ★ 3.8 out of 5 · 5 reviews 4 people reviewed both" in shown
    assert "1 person reviewed both" in shown  # 1/4 with 1 reviewer: never more than the one

    meters = re.findall(r'<meter class="strength" min="0" max="1" value="([\d.]+)"', response.text)
    assert meters == ["1.000", "0.667", "0.500"]  # relative to the best: 1/2, 1/3, 1/4
    assert "0.5000" not in response.text and "0.3333" not in response.text  # no raw scores
    assert part(response, "similar-details") == "Details: jaccard similarity over reviewers. Version sim-v1."
    paths = [r.url.raw_path.decode() for r in sim.requests]
    assert "/v1/items/B001/similar?k=10&measure=jaccard&min_common=1" in paths


def test_the_options_reach_the_similarity_service_and_stay_in_the_form_and_links(client, sim):
    response = client.get("/", params={"item": "B001", "measure": "pearson", "k": "2", "min_common": "20"})
    assert any(
        "measure=pearson" in str(r.url) and "min_common=20" in str(r.url) and "k=2" in str(r.url) for r in sim.requests
    )
    assert '<details id="similar-options" open>' in response.text
    assert (
        '<option value="pearson" selected>' in response.text
        and 'name="min_common" type="number" min="1" value="20"' in response.text
    )
    assert listed(response, "similar-results") == ["B002", "B003"]
    assert "People who reviewed both rated them alike" in part(response, "similar-results")
    assert 'href="/?item=B002&amp;measure=pearson&amp;k=2&amp;min_common=20"' in response.text
    assert "at least 20 reviewers in common" in part(response, "similar-details")
    for odd, shown in (("0", "1"), ("lots", "1"), ("-3", "1"), ("99999999", "1000000")):
        response = client.get("/", params={"item": "B001", "min_common": odd})
        assert f'name="min_common" type="number" min="1" value="{shown}"' in response.text


def test_search_lists_the_matches_and_opens_a_single_one(client):
    response = client.get("/", params={"q": "guitar"})
    assert part(response, "view-title") == "2 products match “guitar”"
    assert listed(response, "search-results") == ["B002", "B003"]
    response = client.get("/", params={"q": "strap"})  # one match: its page
    assert part(response, "view-title") == "Leather Guitar Strap" and 'id="similar-results"' in response.text
    assert part(response, "view-note") == "The product that matches “strap”."
    response = client.get("/", params={"q": "B001"})  # an id: its page
    assert part(response, "view-title") == "Fender Medium Picks, 12 Pack"
    assert 'data-here="/?item=B001"' in response.text  # the address bar shows the product's own address


def test_search_without_matches_or_words_says_so(client, monkeypatch):
    from chorus.services.gateway import page as pages

    assert part(client.get("/", params={"q": "purple banjo"}), "view-message") == (
        "No product matches “purple banjo”. Try other words."
    )
    assert part(client.get("/", params={"q": "  "}), "view-message") == (
        "Type some words of a product title, or a product id."
    )
    assert part(client.get("/", params={"item": "NOPE"}), "view-message") == "No product has the id “NOPE”."
    monkeypatch.setattr(pages, "SEARCH_LIMIT", 1)
    response = client.get("/", params={"q": "guitar"})
    assert part(response, "view-title") == "More than 1 products match “guitar”"


def test_a_reviewer_sees_recent_reviews_and_recommendations_with_reasons(client, rat):
    response = client.get("/", params={"user": "U1"})
    assert part(response, "reviewer-title") == "Reviewer U1"
    assert part(response, "user-facts").startswith("2 reviews, average ★ 4.5 out of 5")
    recent = part(response, "recent")
    assert recent.startswith("Leather Guitar Strap ★★★★★ rated 5 out of 5 2014-07-01 Fender Medium Picks")
    assert part(response, "model-title") == "Recommended for you"
    assert listed(response, "model-results") == ["B003", "B 004"]
    assert "Because you reviewed Fender Medium Picks, 12 Pack and Leather Guitar Strap" in part(
        response, "model-results"
    )
    assert part(response, "model-details") == "Details: ranked by the ease model. Version rat-v1."
    # the model's name is in its details line only
    assert text(response).count("ease") == 1 and "Ranked by ease" not in text(response)
    assert "Because you liked Fender Medium Picks, 12 Pack" in part(response, "because-results")
    assert rat.requests[0].url.raw_path.decode() == "/v1/users/U1/recommendations?k=10"  # the default ranker


def test_an_unknown_reviewer_gets_one_message_and_popular_products(client):
    response = client.get("/", params={"user": "WHO"})
    assert part(response, "user-message") == "We do not know reviewer “WHO”. Here are popular products instead."
    assert part(response, "model-title") == "Popular products"
    assert listed(response, "model-results") and "Popular: 12 reviews" in part(response, "model-results")
    assert response.text.count('class="message"') == 1  # no second box for "because you liked"
    assert 'id="because-results"' not in response.text and 'id="because-message"' not in response.text
    assert part(client.get("/", params={"user": ""}), "user-message") == "Type a reviewer id."


def test_a_version_without_rankers_shows_predicted_ratings(client, monkeypatch):
    monkeypatch.setattr(fakes, "RATING_DEFAULT", "latent")
    response = client.get("/", params={"user": "U2"})
    assert "We think you would rate it 4.8 out of 5" in part(response, "model-results")
    assert "<meter" not in response.text.split('id="model-results"')[1].split("</ol>")[0]
    assert part(response, "model-details") == "Details: ranked by the latent model. Version rat-v1."


def test_a_ranker_that_cannot_name_its_reasons_gets_one_in_words(client, monkeypatch):
    monkeypatch.setattr(fakes, "RATING_METHODS", ["ials", "popular"])
    monkeypatch.setattr(fakes, "RATING_DEFAULT", "ials")
    response = client.get("/", params={"user": "U1", "basket": "B001"})
    assert {
        c
        for c in re.findall(
            r'<p class="reason">([^<]+)</p>', response.text.split('id="model-results"')[1].split("</ol>")[0]
        )
    } == {"Reviewed by people with tastes like yours"}
    assert "Often reviewed with what is in your basket" in part(response, "basket-results")
    assert part(response, "model-details") == "Details: ranked by the ials model. Version rat-v1."


def test_the_basket_adds_removes_and_recommends_with_reasons(client, rat):
    response = client.get("/", params={"add": "B001"})
    assert listed(response, "basket-items") == ["B001"] and part(response, "basket-count") == "1"
    assert 'data-here="/?basket=B001"' in response.text and 'data-basket-given="yes"' in response.text
    assert part(response, "basket-result-title") == "Goes well with your basket"
    assert "Goes with Fender Medium Picks, 12 Pack in your basket" in part(response, "basket-results")
    assert json.loads(rat.requests[-1].content) == {"items": ["B001"], "k": 10}
    # listed products offer "add to basket", except those in it
    assert "In your basket" in part(response, "popular-results")
    response = client.get("/", params={"basket": "B001", "add_ids": "B002, NOPE"})  # typed: commas or spaces
    assert listed(response, "basket-items") == ["B001", "B002", "NOPE"]
    assert part(response, "basket-note") == "Not known here, so not used: NOPE."
    response = client.get("/", params={"basket": "B001,B002", "remove": "B001"})
    assert listed(response, "basket-items") == ["B002"] and 'data-here="/?basket=B002"' in response.text
    response = client.get("/", params={"basket": "B001,B002", "add": "B 004"})  # a button's id, spaces and all
    assert listed(response, "basket-items") == ["B001", "B002", "B 004"]
    assert 'data-here="/?basket=B001%2CB002%2CB+004"' in response.text
    assert listed(client.get("/", params={"basket": "B001,B 004"}), "basket-items") == ["B001", "B 004"]
    response = client.get("/", params={"basket": "B001", "remove": "B001"})
    assert part(response, "basket-message") == "Your basket is empty. Add products with “Add to basket”."
    assert 'data-here="/?basket="' in response.text  # kept empty: the page's script will not restore an old one
    assert client.get("/", params={"basket": "B001"}).headers.get("x-cache") is None  # a page, never cached


def test_a_basket_of_unknown_ids_gets_popular_products(client, rat):
    response = client.get("/", params={"basket": "NOPE, ALSO-NOPE"})
    assert part(response, "basket-result-title") == "Popular products"
    assert part(response, "basket-result-note") == "We do not know these products yet, so here are popular ones."
    response = client.get("/", params={"basket": ",".join(f"X{n}" for n in range(60))})
    assert len(listed(response, "basket-items")) == 50
    assert "A basket holds at most 50 products" in part(response, "basket-note")
    rat.mode = "refuse"
    response = client.get("/", params={"basket": "B001"})
    assert part(response, "basket-result-message").startswith("Sorry, that cannot be answered right now: the rating")


def test_every_form_and_link_keeps_the_reviewer_and_the_basket(client):
    response = client.get("/", params={"item": "B001", "user": "U1", "basket": "B002"})
    html = response.text
    for form in ("search-form", "score-form", "basket-form", "similar-form"):
        chunk = html.split(f'id="{form}"')[1].split("</form>")[0]
        assert '<input type="hidden" name="user" value="U1">' in chunk, form
        assert '<input type="hidden" name="basket" value="B002">' in chunk, form
    user_form = html.split('id="user-form"')[1].split("</form>")[0]
    assert '<input type="hidden" name="item" value="B001">' in user_form
    assert 'href="/?item=B003&amp;user=U1&amp;basket=B002"' in html  # a listed product keeps both
    assert 'href="/?item=B001&amp;basket=B002"' in html  # "stop showing this reviewer" keeps the view and basket
    # a search keeps them too, and replaces the product view
    response = client.get("/", params={"q": "guitar", "user": "U1", "basket": "B002"})
    assert 'data-here="/?q=guitar&amp;user=U1&amp;basket=B002"' in response.text
    assert listed(response, "model-results") and listed(response, "basket-items") == ["B002"]


def test_the_review_box_shows_what_the_text_predicts(client, rat):
    response = client.get("/", params={"review": "Great strings bright tone", "stars": "5", "item": "B001"})
    assert part(response, "score-rating") == "4.5 out of 5" and part(response, "score-verified") == "90%"
    assert part(response, "score-raised") == "Words that raised it: great, strings, bright"
    assert 'id="similar-results"' in response.text  # the product view stays
    assert json.loads(rat.requests[-1].content) == {"text": "Great strings bright tone", "rating": 5}
    assert part(client.get("/", params={"review": "  "}), "score-message") == "Type the text of a review."
    assert "at most 20,000 characters" in part(client.get("/", params={"review": "x" * 20_001}), "score-message")


def test_one_service_down_leaves_the_other_part_of_the_page(sim, rat):
    sim.mode = "refuse"
    with make_client(sim, rat) as c:
        response = c.get("/", params={"user": "U1"})
        assert "Because you reviewed" in part(response, "model-results")
        assert part(response, "because-message").startswith("Sorry, that cannot be answered right now: the similarity")
        assert part(response, "view-message").startswith("Sorry, that cannot be answered right now")
        assert 'placeholder="e.g.' not in response.text.split('id="user-form"')[1].split("</form>")[0]


def test_odd_parameters_and_ids_are_handled(client, sim, rat):
    response = client.get("/", params={"item": "B001", "measure": "euclid", "k": "lots"})
    assert response.status_code == 200 and '<option value="jaccard" selected>' in response.text
    assert "<script>alert" not in client.get("/", params={"q": "<script>alert(1)</script>"}).text
    assert part(client.get("/", params={"item": "B001/similar"}), "view-message") == (
        "No product has the id “B001/similar”."
    )
    response = client.get("/", params={"user": "U1/similar"})
    assert part(response, "user-message") == "We do not know reviewer “U1/similar”." and rat.api_calls() == 0
    assert part(client.get("/", params={"item": ".."}), "view-message") == "No product has the id “..”."
    assert any(r.url.raw_path.decode() == "/v1/items/%2E%2E" for r in sim.requests)


def _fields(response: httpx.Response) -> dict[str, Any]:
    return dict(re.findall(r'data-(here|basket|basket-given)="([^"]*)"', response.text))


def test_the_page_tells_its_script_its_own_address_and_basket(client):
    fields = _fields(client.get("/", params={"q": "guitar", "add": "B001", "review": "fine"}))
    assert fields == {"here": "/?q=guitar&amp;basket=B001&amp;review=fine", "basket": "B001", "basket-given": "yes"}
    assert _fields(client.get("/")) == {"here": "/", "basket": "", "basket-given": "no"}


def test_the_page_links_to_the_report_which_the_gateway_serves_per_version(client, rat, monkeypatch):
    report = "<!DOCTYPE html><html><body><h1>Chorus report</h1><svg></svg></body></html>"
    answer = rat._rating

    def with_report(request, parts, params):
        if parts[1:] == ["v1", "report"]:
            headers = {"X-Model-Version": rat.version, "content-type": "text/html; charset=utf-8"}
            return httpx.Response(200, content=report.encode(), headers=headers)
        return answer(request, parts, params)

    home = client.get("/")
    link = re.search(r'<a href="([^"]+)">How the models were measured</a>', home.text)
    assert link and link.group(1) == "/report"
    assert client.get("/report").status_code == 404  # a version without a report: the service's error, as JSON
    monkeypatch.setattr(rat, "_rating", with_report)
    first, second = client.get("/report"), client.get("/report")
    assert first.status_code == 200 and first.text == report == second.text
    assert first.headers["content-type"] == "text/html; charset=utf-8" and first.headers["x-model-version"] == "rat-v1"
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")

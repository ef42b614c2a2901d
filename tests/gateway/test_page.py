"""The web page at ``/``, rendered by the gateway against fakes of both services (no browser here)."""

from __future__ import annotations

import json
import re

from tests.gateway.conftest import make_client


def text(response) -> str:
    """The page's visible text, roughly: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))


def test_empty_page_has_both_forms(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    for marker in [
        'id="similar-form"',
        'name="q"',
        'name="measure"',
        'name="min_common"',
        'id="user-form"',
        'name="user"',
        'id="basket-form"',
        'name="basket"',
    ]:
        assert marker in response.text
    assert "/static/style.css" in response.text
    assert client.get("/static/style.css").status_code == 200


def test_product_id_shows_similar_items_with_titles_and_scores(client, sim):
    response = client.get("/", params={"q": "B001", "measure": "cosine", "k": "2"})
    page = text(response)
    assert 'id="similar-results"' in response.text
    assert "Products similar to Fender Medium Picks, 12 Pack" in page
    assert "Leather Guitar Strap" in page and "0.5000" in page
    assert "Clip-on Guitar Tuner" in page and "0.3333" in page
    assert "Item with a space" not in page  # k=2
    assert '<option value="cosine" selected>' in response.text
    assert any("measure=cosine" in str(r.url) for r in sim.requests)


def test_min_common_goes_to_the_similarity_service_and_stays_in_the_form_and_links(client, sim):
    response = client.get("/", params={"q": "B001", "measure": "pearson", "k": "2", "min_common": "20"})
    assert response.status_code == 200
    assert any("measure=pearson" in str(r.url) and "min_common=20" in str(r.url) for r in sim.requests)
    assert 'id="min_common" name="min_common" type="number" min="1" value="20"' in response.text
    assert "min_common=20" in response.text.split('id="similar-results"')[1]  # the result links keep it
    assert "at least 20 reviewers in common" in text(response)
    for odd, shown in (("0", "1"), ("lots", "1"), ("-3", "1"), ("99999999", "1000000")):
        response = client.get("/", params={"q": "B001", "min_common": odd})
        assert f'name="min_common" type="number" min="1" value="{shown}"' in response.text


def test_title_words_search_then_show_the_first_match(client):
    page = text(client.get("/", params={"q": "guitar", "measure": "jaccard"}))
    assert "2 products match “guitar”; showing the first" in page
    assert "Products similar to Leather Guitar Strap" in page
    assert "Clip-on Guitar Tuner" in page


def test_unknown_id_or_empty_search_says_so(client):
    response = client.get("/", params={"q": "NOPE123"})
    assert 'id="similar-message"' in response.text
    assert "No product has the id or title words “NOPE123”" in text(response)
    assert "No product has the id or title words “purple banjo”" in text(client.get("/", params={"q": "purple banjo"}))
    assert "Type a product id or some words" in text(client.get("/", params={"q": "  "}))


def test_user_gets_the_default_rankers_list_with_reasons_and_because_you_liked(client, rat):
    response = client.get("/", params={"user": "U1"})
    page = text(response)
    assert 'id="model-results"' in response.text and 'id="because-results"' in response.text
    assert '<h3 id="model-title">Recommended for you</h3>' in response.text and "Ranked by ease." in page
    assert "because you reviewed Fender Medium Picks, 12 Pack, Leather Guitar Strap" in page
    assert "0.5" in page and "★" not in page.split("Because you liked")[0]
    assert "because you liked Fender Medium Picks, 12 Pack" in page
    assert rat.requests[0].url.raw_path.decode() == "/v1/users/U1/recommendations?k=10"  # the default: no method


def test_unknown_user_gets_popular_items_and_a_clear_message(client):
    response = client.get("/", params={"user": "WHO"})
    page = text(response)
    assert '<h3 id="model-title">Popular products</h3>' in response.text  # not "recommended for you"
    assert "We do not know user “WHO” yet, so these are popular products." in page
    assert "No user has the id “WHO”." in page
    assert "Type a user id." in text(client.get("/", params={"user": ""}))


def test_a_version_without_rankers_shows_predicted_ratings(client, monkeypatch):
    from tests.gateway import fakes

    monkeypatch.setattr(fakes, "RATING_DEFAULT", "latent")
    response = client.get("/", params={"user": "U2"})
    assert '<h3 id="model-title">Predicted to rate highly</h3>' in response.text
    assert "4.80 ★" in text(response)
    response = client.get("/", params={"user": "WHO"})
    assert '<h3 id="model-title">Popular products</h3>' in response.text  # the fake's fallback is popular


def test_basket_shows_its_recommendations_with_reasons_and_unknown_ids(client, rat):
    response = client.get("/", params={"basket": "B001, NOPE  B001,"})
    page = text(response)
    assert 'id="basket-results"' in response.text
    assert '<h3 id="basket-result-title">Recommended for this basket</h3>' in response.text
    assert "because of Fender Medium Picks, 12 Pack" in page
    assert "Not known, left out: NOPE." in page
    assert 'value="B001, NOPE  B001,"' in response.text
    assert json.loads(rat.requests[-1].content) == {"items": ["B001", "NOPE"], "k": 10}
    assert client.get("/", params={"basket": "B001"}).headers.get("x-cache") is None  # a page, never cached


def test_basket_of_unknown_ids_or_nothing_says_so(client, rat):
    page = text(client.get("/", params={"basket": "NOPE, ALSO-NOPE"}))
    assert "We do not know any of these products yet, so these are popular products." in page
    assert "Not known, left out" not in page
    assert "Type some product ids" in text(client.get("/", params={"basket": " , "}))
    rat.mode = "refuse"
    assert "Sorry, that cannot be answered right now: the rating service" in text(
        client.get("/", params={"basket": "B001"})
    )


def test_more_matches_than_listed_says_more_than(client, sim, monkeypatch):
    from chorus.services.gateway import page as pages

    monkeypatch.setattr(pages, "SEARCH_LIMIT", 1)  # the fakes have 2 guitar products
    response = client.get("/", params={"q": "guitar"})
    assert "more than 1 products match “guitar”; showing the first" in text(response)
    assert "limit=2" in str(sim.requests[1].url)  # after the id lookup of "guitar"
    assert "<li>" not in response.text
    monkeypatch.setattr(pages, "SEARCH_LIMIT", 2)
    page = text(client.get("/", params={"q": "guitar"}))
    assert "2 products match “guitar”; showing the first" in page and "Clip-on Guitar Tuner" in page


def test_ids_with_a_slash_or_dots_are_unknown_on_the_page(client, sim, rat):
    page = text(client.get("/", params={"q": "B001/similar"}))
    assert "No product has the id or title words “B001/similar”" in page
    assert all("/similar" not in r.url.path for r in sim.requests)  # searched for as title words only
    page = text(client.get("/", params={"user": "U1/similar"}))
    assert page.count("No user has the id “U1/similar”.") == 2 and rat.api_calls() == 0
    assert "No product has the id or title words “..”" in text(client.get("/", params={"q": ".."}))
    assert sim.requests[-2].url.raw_path.decode() == "/v1/items/%2E%2E"


def test_one_service_down_leaves_the_other_part_of_the_page(sim, rat):
    sim.mode = "refuse"
    with make_client(sim, rat) as c:
        page = text(c.get("/", params={"user": "U1"}))
        assert "because you reviewed" in page
        assert "Sorry, that cannot be answered right now: the similarity service" in page
        page = text(c.get("/", params={"q": "B001"}))
        assert "cannot be answered right now" in page


def test_odd_page_parameters_fall_back_to_defaults(client):
    response = client.get("/", params={"q": "B001", "measure": "euclid", "k": "lots"})
    assert response.status_code == 200
    assert '<option value="jaccard" selected>' in response.text
    assert "<script" not in client.get("/", params={"q": "<script>alert(1)</script>"}).text


def test_review_box_shows_what_the_text_predicts(client, rat):
    html = client.get("/", params={"review": "Great strings bright tone", "stars": "5"}).text
    assert 'id="score-form"' in html and "4.50 ★" in html and "0.90" in html
    assert "<td>great</td>" in html and json.loads(rat.requests[-1].content) == {
        "text": "Great strings bright tone",
        "rating": 5,
    }
    assert "Type the text of a review." in client.get("/", params={"review": "  "}).text
    assert "at most 20,000 characters" in client.get("/", params={"review": "x" * 20_001}).text

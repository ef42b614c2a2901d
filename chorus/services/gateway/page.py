"""The web page at ``/``: server-rendered, no JavaScript needed, answered through the same cache as the API.

Three forms, each a plain ``GET /``: ``q`` (a product id or words of a title) with ``measure``, ``k`` and
``min_common`` (the least number of reviewers a neighbour shares with the product) shows the similar items;
``user`` shows the user's recommendations, by the served default ranker with its reasons ("because you reviewed
X, Y") and "because you liked"; ``basket`` (product ids, separated by commas or spaces) shows the
recommendations for that basket (``POST /v1/recommendations``, never cached); ``review`` (a review's text, with an
optional ``stars``) shows what the text predicts (``POST /v1/reviews/score``, never cached). Every failure becomes
a message on the page, never an error page, and one failing service leaves the other's part.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, cast

from chorus.services.gateway.core import Answer, Gateway
from chorus.services.gateway.hitpath import ident, k_query, recommendations_target, search_query, similar_query
from chorus.shared.contract.errors import ChorusError
from chorus.shared.contract.names import DEFAULT_MIN_COMMON, MAX_ID_LENGTH, MAX_PAIRS
from chorus.shared.contract.reviews import MAX_TEXT_CHARS, SCORE_PATH

SEARCH_LIMIT = 10  # title matches listed; one more is asked for, to tell "more than 10 match"


@dataclass
class Section:
    """One part of the page: a result, or a message saying why there is none."""

    data: dict[str, Any] | None = None
    message: str | None = None
    note: str | None = None
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Failed(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


async def _json(gw: Gateway, service: str, route: str, query: str, not_found: str) -> dict[str, Any]:
    """The JSON answer, or :class:`_Failed` with a message for the page."""
    try:
        answer: Answer = await gw.get(service, route, query)
    except ChorusError as exc:
        raise _Failed(f"Sorry, that cannot be answered right now: {exc.detail}.") from exc
    return _body(answer, service, not_found)


def _body(answer: Answer, service: str, not_found: str) -> dict[str, Any]:
    try:
        body = json.loads(answer.body)
    except ValueError as exc:
        raise _Failed(f"The {service} service sent an answer that is not JSON.") from exc
    if answer.status == 404:
        raise _Failed(not_found)
    if answer.status != 200:
        detail = body.get("detail") if isinstance(body, dict) else None
        raise _Failed(f"The {service} service refused the request: {detail if isinstance(detail, str) else body}")
    return cast(dict[str, Any], body)  # a 200 answer of the services is a JSON object


async def similar_section(gw: Gateway, q: str, measure: str, k: int, min_common: int = DEFAULT_MIN_COMMON) -> Section:
    """Similar items for a product id, or for the best title match of the words typed."""
    q = q.strip()
    if not q:
        return Section(message="Type a product id or some words of a product title.")
    section = Section()
    item = None
    if " " not in q and "/" not in q:  # ids have neither (see hitpath.ident)
        try:
            item = await _json(gw, "similarity", f"items/{ident(q)}", "", "")
        except _Failed as failed:
            if failed.message:  # empty message: unknown id, try it as title words below
                return Section(message=failed.message)
    if item is None:
        try:
            found = await _json(gw, "similarity", "items", search_query(q, SEARCH_LIMIT + 1), "")
        except _Failed as failed:
            return Section(message=failed.message or f"No product has the id or title words “{q}”.")
        matches = found.get("data") or []
        if not matches:
            return Section(message=f"No product has the id or title words “{q}”. Try other words.")
        item = matches[0]
        if len(matches) > 1:
            how_many = f"more than {SEARCH_LIMIT}" if len(matches) > SEARCH_LIMIT else str(len(matches))
            section.note = f"{how_many} products match “{q}”; showing the first. Others:"
            section.extra["matches"] = matches[1:SEARCH_LIMIT]
    try:
        similar = await _json(
            gw,
            "similarity",
            f"items/{ident(item['item_id'])}/similar",
            similar_query(k, measure, min_common),
            f"No product has the id “{item['item_id']}”.",
        )
    except _Failed as failed:
        return Section(message=failed.message)
    section.data = similar
    section.extra["item"] = item
    if not similar.get("data"):
        section.message = (
            "No other product shares a reviewer with this one."
            if min_common <= 1
            else f"No other product shares {min_common} reviewers with this one."
        )
    return section


async def _recommendations(gw: Gateway, service: str, user: str, k: int, empty: str) -> Section:
    """A user's recommendations from ``service``; ``empty`` is the message for an empty list."""
    not_found = f"No user has the id “{user}”."
    if "/" in user:  # not an id (see hitpath.ident)
        return Section(message=not_found)
    try:
        body = await _json(gw, service, f"users/{ident(user)}/recommendations", k_query(k), not_found)
    except _Failed as failed:
        return Section(message=failed.message)
    section = Section(data=body)
    if not body.get("data"):
        section.message = empty
    return section


def ranked_title(body: dict[str, Any], who: str) -> tuple[str, str | None]:
    """The heading of a ranked list and a note on it: what ranked it, and why popular items when it fell back
    (``who`` says what was not known)."""
    model = body.get("model")
    if body.get("fallback"):
        # the popular fallback: ranked by popularity, not for this user
        title = "Popular, well-rated products" if model == "latent" else "Popular products"
        return title, f"We do not know {who} yet, so these are {title[0].lower()}{title[1:]}."
    if model == "latent":
        return "Predicted to rate highly", None
    return "Recommended for you", f"Ranked by {model}."


async def model_section(gw: Gateway, user: str, k: int) -> Section:
    """The user's recommendations by the served version's default ranker (rating service), each with the
    reviews that weighed most; popular products for a user it does not know."""
    if "/" in user:  # not an id (see hitpath.ident)
        return Section(message=f"No user has the id “{user}”.", title="Recommended for you")
    target = recommendations_target(user, k, None, [])
    if target is None:  # cannot happen: no method, no exclude
        return Section(message="Sorry, that cannot be answered.", title="Recommended for you")
    service, route, query = target
    try:
        body = await _json(gw, service, route, query, f"No user has the id “{user}”.")
    except _Failed as failed:
        return Section(message=failed.message, title="Recommended for you")
    section = Section(data=body)
    section.title, section.note = ranked_title(body, f"user “{user}”")
    if not body.get("data"):
        section.message = "Nothing left to recommend: this user has reviewed every product."
    return section


def basket_ids(text: str) -> list[str]:
    """The product ids typed in the basket box: separated by commas or white space, repeats dropped."""
    return list(dict.fromkeys(t for t in re.split(r"[\s,]+", text) if t))


async def basket_section(gw: Gateway, text: str, k: int) -> Section:
    """Recommendations for a basket of product ids, by the served default ranker (``POST /v1/recommendations``)."""
    items = basket_ids(text)
    if not items:
        return Section(message="Type some product ids, separated by commas or spaces.")
    if len(items) > MAX_PAIRS or any(len(i) > MAX_ID_LENGTH for i in items):
        return Section(message=f"A basket holds at most {MAX_PAIRS} ids of at most {MAX_ID_LENGTH} characters.")
    payload = json.dumps({"items": items, "k": k}).encode()
    try:
        body = _body(await gw.post("rating", "/v1/recommendations", payload), "rating", "")
    except ChorusError as exc:
        return Section(message=f"Sorry, that cannot be answered right now: {exc.detail}.")
    except _Failed as failed:
        return Section(message=failed.message)
    section = Section(data=body, extra={"items": items})
    who = "any of these products" if len(items) > 1 else "this product"
    section.title, section.note = ranked_title(body, who)
    if not body.get("fallback"):
        section.title = "Recommended for this basket"
    unknown = body.get("unknown_items") or []
    if unknown and len(unknown) < len(items):
        section.extra["unknown"] = f"Not known, left out: {', '.join(unknown)}."
    if not body.get("data"):
        section.message = "Nothing left to recommend for this basket."
    return section


async def because_section(gw: Gateway, user: str, k: int) -> Section:
    """Recommendations "because you liked …" (similarity service)."""
    return await _recommendations(gw, "similarity", user, k, "No product is similar to the ones this user liked.")


async def score_section(gw: Gateway, text: str, stars: str | None) -> Section:
    """What a review's text predicts: star rating, verified-purchase probability, the terms that moved the rating
    (``POST /v1/reviews/score``)."""
    if not text.strip():
        return Section(message="Type the text of a review.")
    if len(text) > MAX_TEXT_CHARS:
        return Section(message=f"A review can have at most {MAX_TEXT_CHARS:,} characters; this one has {len(text):,}.")
    review: dict[str, str | int] = {"text": text}
    if stars and stars.strip().isdigit():
        review["rating"] = int(stars)
    try:
        answer = await gw.post("rating", SCORE_PATH, json.dumps(review).encode())
        body = _body(answer, "rating", "The served version has no review-text model (its data had no review text).")
    except ChorusError as exc:
        return Section(message=f"Sorry, that cannot be answered right now: {exc.detail}.")
    except _Failed as failed:
        return Section(message=failed.message)
    return Section(data=body, title="What this review says")

"""The web page at ``/``: server-rendered, no JavaScript needed, answered through the same cache as the API.

Two forms, each a plain ``GET /``: ``q`` (a product id or words of a title) with ``measure`` and ``k`` shows the
similar items; ``user`` shows the user's recommendations, by predicted rating and "because you liked". Every
failure becomes a message on the page, never an error page, and one failing service leaves the other's part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from chorus.services.gateway.core import Answer, Gateway
from chorus.services.gateway.hitpath import ident, k_query, search_query, similar_query
from chorus.shared.errors import ChorusError

SEARCH_LIMIT = 10  # title matches listed; one more is asked for, to tell "more than 10 match"


@dataclass
class Section:
    """One part of the page: a result, or a message saying why there is none."""

    data: dict | None = None
    message: str | None = None
    note: str | None = None
    title: str | None = None
    extra: dict = field(default_factory=dict)


class _Failed(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


async def _json(gw: Gateway, service: str, route: str, query: str, not_found: str) -> dict:
    """The JSON answer, or :class:`_Failed` with a message for the page."""
    try:
        answer: Answer = await gw.get(service, route, query)
    except ChorusError as exc:
        raise _Failed(f"Sorry, that cannot be answered right now: {exc.detail}.") from exc
    try:
        body = json.loads(answer.body)
    except ValueError as exc:
        raise _Failed(f"The {service} service sent an answer that is not JSON.") from exc
    if answer.status == 404:
        raise _Failed(not_found)
    if answer.status != 200:
        detail = body.get("detail") if isinstance(body, dict) else None
        raise _Failed(f"The {service} service refused the request: {detail if isinstance(detail, str) else body}")
    return body


async def similar_section(gw: Gateway, q: str, measure: str, k: int) -> Section:
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
            similar_query(k, measure, 1),
            f"No product has the id “{item['item_id']}”.",
        )
    except _Failed as failed:
        return Section(message=failed.message)
    section.data = similar
    section.extra["item"] = item
    if not similar.get("data"):
        section.message = "No other product shares a reviewer with this one."
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


async def model_section(gw: Gateway, user: str, k: int) -> Section:
    """Recommendations by predicted rating (rating service); popular products for a user it does not know."""
    section = await _recommendations(
        gw, "rating", user, k, "Nothing left to recommend: this user has reviewed every product."
    )
    section.title = "Predicted to rate highly"
    if section.data and section.data.get("fallback"):
        # the rating service's "popular" fallback: ranked by popularity, not by a prediction for this user
        section.title = "Popular, well-rated products"
        section.note = f"We do not know user “{user}” yet, so these are popular, well-rated products."
    return section


async def because_section(gw: Gateway, user: str, k: int) -> Section:
    """Recommendations "because you liked …" (similarity service)."""
    return await _recommendations(gw, "similarity", user, k, "No product is similar to the ones this user liked.")

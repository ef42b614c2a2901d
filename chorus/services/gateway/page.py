"""The web page at ``/``: a shop front over the API, rendered on the server, with a little JavaScript for title
suggestions and for remembering the basket.

The page's state lives in its query string, and every link and form on the page carries it, so that one action
never loses another's result:

* ``user``: the reviewer the page recommends for (their recent reviews, "recommended for you" by the served default
  ranker with its reasons, and "because you liked", from the similarity service);
* ``basket``: product ids, separated by commas, with its recommendations (``POST /v1/recommendations``); ``add``
  and ``remove`` (one id each, as the buttons send it) and ``add_ids`` (ids typed, separated by commas or spaces)
  change it;
* the view: ``item`` (a product: its facts and the products reviewed by the same people, under ``measure``, ``k``
  and ``min_common``), or ``q`` (title words: the products that match; an exact id or a single match opens the
  product), or, with neither, the home view: the most reviewed products and the busiest reviewers of the served
  data, which are also the page's example ids;
* ``review`` and ``stars``: what a review's text predicts (``POST /v1/reviews/score``).

Every answer comes through :class:`~chorus.services.gateway.core.Gateway`, so the page is served from the same
cache as the API; the downstream calls of one page are made concurrently. Every failure becomes a message in its
own part of the page, never an error page. Scores are shown as a bar relative to the best of their list, with a
reason in words; the model that ranked a list is named only in its details line.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlencode

from chorus.services.gateway.core import Answer, Gateway
from chorus.services.gateway.events import EVERYONE, of_user
from chorus.services.gateway.hitpath import (
    Target,
    ident,
    item_target,
    k_query,
    recommendations_target,
    search_target,
    similar_items_target,
)
from chorus.shared.contract.errors import ChorusError
from chorus.shared.contract.names import (
    DEFAULT_K,
    DEFAULT_MEASURE,
    DEFAULT_MIN_COMMON,
    MAX_ID_LENGTH,
    MAX_K,
    MAX_MIN_COMMON,
    Measure,
    Method,
)
from chorus.shared.contract.reviews import MAX_TEXT_CHARS, SCORE_PATH

SEARCH_LIMIT = 10  # title matches listed; one more is asked for, to tell "more than 10 match"
LIST_K = 10  # recommendations per list
EXAMPLES = 5  # popular products and busy reviewers on the home view
MAX_BASKET = 50  # products a basket on the page holds

MEASURE_REASON = {
    Measure.cosine: "Reviewed by the same people, with similar ratings",
    Measure.pearson: "People who reviewed both rated them alike",
}
"""The reason shown for a similar item under each measure; Jaccard's is the count of people who reviewed both."""


# --- the page's state --------------------------------------------------------------------------------------------


def _number(value: str | None, default: int, most: int) -> int:
    """A number typed on the page, within ``1..most``; ``default`` for one that is not a number."""
    try:
        return min(max(int(value or default), 1), most)
    except ValueError:
        return default


def typed_ids(text: str) -> list[str]:
    """Product ids as a person types them: separated by commas or white space."""
    return [t for t in re.split(r"[\s,]+", text) if t]


def listed_ids(text: str) -> list[str]:
    """Product ids as the page lists them in ``basket``: separated by commas (an id may hold a space)."""
    return [t.strip() for t in text.split(",") if t.strip()]


@dataclass(frozen=True)
class State:
    """What the page shows, read from its query string (see the module docstring)."""

    q: str | None = None
    item: str | None = None
    user: str | None = None
    basket: tuple[str, ...] = ()
    basket_given: bool = False  # ``basket`` was in the query, even empty: the page's script keeps it as it is
    measure: str = DEFAULT_MEASURE.value
    k: int = DEFAULT_K
    min_common: int = DEFAULT_MIN_COMMON
    review: str | None = None
    stars: str | None = None
    notes: tuple[str, ...] = ()  # what was left out of the basket, and why

    @classmethod
    def of(cls, params: Mapping[str, str]) -> State:
        """The state of a request's query parameters; ``add`` and ``remove`` applied to the basket."""

        def text(name: str) -> str | None:
            value = params.get(name)
            return None if value is None else value.strip()

        measure = params.get("measure")
        items = listed_ids(params.get("basket") or "")
        add = [*typed_ids(params.get("add_ids") or ""), (params.get("add") or "").strip()]
        remove = (params.get("remove") or "").strip()
        notes = []
        wanted = [i for i in [*items, *add] if i and i != remove]
        too_long = [i for i in wanted if len(i) > MAX_ID_LENGTH]
        if too_long:
            notes.append(f"Ids longer than {MAX_ID_LENGTH} characters were left out.")
        kept = list(dict.fromkeys(i for i in wanted if len(i) <= MAX_ID_LENGTH))
        if len(kept) > MAX_BASKET:
            notes.append(f"A basket holds at most {MAX_BASKET} products; the last ones were left out.")
            kept = kept[:MAX_BASKET]
        return cls(
            q=text("q") if "item" not in params else None,
            item=text("item") or None,
            user=text("user"),
            basket=tuple(kept),
            basket_given=any(name in params for name in ("basket", "add", "add_ids", "remove")),
            measure=measure if measure in {m.value for m in Measure} else DEFAULT_MEASURE.value,
            k=_number(params.get("k"), DEFAULT_K, MAX_K),
            min_common=_number(params.get("min_common"), DEFAULT_MIN_COMMON, MAX_MIN_COMMON),
            review=params.get("review"),
            stars=params.get("stars"),
            notes=tuple(notes),
        )

    def query(self, changes: Mapping[str, str | None] | None = None, keep_review: bool = False) -> dict[str, str]:
        """The query parameters of this state with ``changes`` (``None`` drops a parameter): the reviewer, the basket
        and the view; the review only with ``keep_review`` (it may be long)."""
        changes = changes or {}
        pairs: dict[str, str | None] = {}
        if self.item:
            pairs["item"] = self.item
            if self.measure != DEFAULT_MEASURE.value:
                pairs["measure"] = self.measure
            if self.k != DEFAULT_K:
                pairs["k"] = str(self.k)
            if self.min_common != DEFAULT_MIN_COMMON:
                pairs["min_common"] = str(self.min_common)
        elif self.q:
            pairs["q"] = self.q
        if self.user:
            pairs["user"] = self.user
        if self.basket or self.basket_given:
            pairs["basket"] = ",".join(self.basket)
        if keep_review and self.review is not None:
            pairs["review"] = self.review
            if self.stars:
                pairs["stars"] = self.stars
        if "item" in changes or "q" in changes:  # a new view: the old one's parameters go
            for name in ("item", "q", "measure", "k", "min_common"):
                pairs.pop(name, None)
        pairs.update(changes)
        return {name: value for name, value in pairs.items() if value is not None}

    def url(self, **changes: str | None) -> str:
        """A link to this state with ``changes`` (see :meth:`query`)."""
        return _address(self.query(changes))

    def item_url(self, item_id: str, keep_options: bool = False) -> str:
        """A link to a product's view; with ``keep_options``, under this view's measure, k and least reviewers in
        common."""
        if not keep_options:
            return self.url(item=item_id)
        return _address(replace(self, item=item_id).query())

    def hidden(self, *drop: str) -> dict[str, str]:
        """The hidden fields a form carries to keep this state, without the parameters it sets itself."""
        return {name: value for name, value in self.query().items() if name not in drop}

    @property
    def here(self) -> str:
        """This page's own address, without ``add`` or ``remove`` (what the script puts in the address bar)."""
        return _address(self.query(keep_review=True))


def _address(query: dict[str, str]) -> str:
    return "/?" + urlencode(query) if query else "/"


# --- what the page shows ---------------------------------------------------------------------------------------


@dataclass
class Product:
    """A product as the page lists it: its facts where known, why it is listed and how strongly (0..1 of the best
    of its list)."""

    item_id: str
    title: str | None = None
    reviews: int | None = None
    mean_rating: float | None = None
    reason: str | None = None
    strength: float | None = None
    predicted: float | None = None  # a predicted star rating, where the list is ranked by one

    @property
    def name(self) -> str:
        return self.title or self.item_id


@dataclass
class Part:
    """One part of the page: a heading, a list of products (or other rows), and a message where there is none, a
    note, and a details line naming what produced it."""

    title: str | None = None
    products: list[Product] = field(default_factory=list)
    message: str | None = None
    note: str | None = None
    details: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Failed(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _body(answer: Answer, service: str, not_found: str) -> dict[str, Any]:
    """A 200 answer's JSON object, or :class:`_Failed` with a message for the page."""
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


async def _get(gw: Gateway, target: Target, not_found: str) -> tuple[dict[str, Any], str | None]:
    """The JSON answer of a cached GET and the version that answered, or :class:`_Failed`."""
    try:
        answer = await gw.get(*target)
    except ChorusError as exc:
        raise _Failed(f"Sorry, that cannot be answered right now: {exc.detail}.") from exc
    return _body(answer, target.service, not_found), answer.version


def top_target(k: int) -> Target:
    """``GET /v1/stats/top`` of the similarity service: its answer leaves out forgotten users, so it depends on
    every user's events."""
    return Target("similarity", "stats/top", k_query(k), EVERYONE)


def user_target(user_id: str) -> Target:
    """``GET /v1/users/{id}`` of the similarity service: the user's newest reviews, events included."""
    return Target("similarity", f"users/{ident(user_id)}", "", of_user(user_id))


async def _post(
    gw: Gateway, service: str, path: str, payload: dict[str, Any], not_found: str
) -> tuple[dict[str, Any], str | None]:
    """The JSON answer of a POST (never cached) and the version that answered, or :class:`_Failed`."""
    try:
        answer = await gw.post(service, path, json.dumps(payload).encode())
    except ChorusError as exc:
        raise _Failed(f"Sorry, that cannot be answered right now: {exc.detail}.") from exc
    return _body(answer, service, not_found), answer.version


async def _facts(gw: Gateway, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Title, review count and mean rating of each product that the similarity service knows and can answer for."""

    async def one(item_id: str) -> dict[str, Any] | None:
        if "/" in item_id:  # not an id (see hitpath.ident)
            return None
        try:
            return (await _get(gw, item_target(item_id), ""))[0]
        except _Failed:
            return None

    ids = list(dict.fromkeys(item_ids))
    found = await asyncio.gather(*(one(i) for i in ids))
    return {i: f for i, f in zip(ids, found, strict=True) if f is not None}


def _fill(products: list[Product], facts: Mapping[str, dict[str, Any]]) -> None:
    for p in products:
        f = facts.get(p.item_id)
        if f is not None:
            p.title = p.title or f.get("title")
            p.reviews, p.mean_rating = f.get("reviews"), f.get("mean_rating")


def _strengths(products: list[Product], scores: list[float]) -> None:
    """Each product's score as a share of the list's best (a bar's length); none where the best is not positive."""
    best = max(scores, default=0.0)
    for p, s in zip(products, scores, strict=True):
        p.strength = max(s, 0.0) / best if best > 0 else None


def _names(refs: list[dict[str, Any]]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    names = [r.get("title") or r["item_id"] for r in refs]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def reviews_text(n: int) -> str:
    """``1 review``, ``1,234 reviews``."""
    return f"{n:,} review{'' if n == 1 else 's'}"


def _version(version: str | None) -> str:
    return f" Version {version}." if version else ""


# --- the parts ---------------------------------------------------------------------------------------------------


async def home_part(gw: Gateway) -> Part:
    """The most reviewed products and the busiest reviewers of the served data (``GET /v1/stats/top``)."""
    try:
        top, version = await _get(gw, top_target(EXAMPLES), "")
    except _Failed as failed:
        return Part(title="Popular products", message=failed.message or "The served version lists no products.")
    products = [Product(d["item_id"], d.get("title"), d.get("reviews"), d.get("mean_rating")) for d in top["items"]]
    for p in products:
        p.reason = f"One of the most reviewed: {reviews_text(p.reviews)}" if p.reviews is not None else None
    details = f"Details: the most reviewed products of the served data.{_version(version)}"
    part = Part(title="Popular products", products=products, details=details, extra={"users": top["users"]})
    if not products:
        part.message = "The served data has no products."
    return part


async def item_part(gw: Gateway, state: State) -> Part:
    """A product: its facts and the products reviewed by the same people, best first, each with a reason."""
    item_id = state.item or ""
    unknown = f"No product has the id “{item_id}”."
    if "/" in item_id:  # not an id (see hitpath.ident)
        return Part(message=unknown)
    neighbours = similar_items_target(item_id, state.k, state.measure, state.min_common)
    try:
        (facts, _), (similar, version) = await asyncio.gather(
            _get(gw, item_target(item_id), unknown), _get(gw, neighbours, unknown)
        )
    except _Failed as failed:
        return Part(message=failed.message)
    hits = similar.get("data") or []
    products = [Product(h["item_id"], h.get("title")) for h in hits]
    _fill(products, await _facts(gw, [p.item_id for p in products]))
    _strengths(products, [float(h["score"]) for h in hits])
    for p, h in zip(products, hits, strict=True):
        p.reason = _similar_reason(state.measure, float(h["score"]), facts.get("reviews"), p.reviews)
    common = f", at least {state.min_common} reviewers in common" if state.min_common > 1 else ""
    part = Part(
        title="Customers who reviewed this also reviewed",
        products=products,
        details=f"Details: {state.measure} similarity over reviewers{common}.{_version(version)}",
        extra={"item": facts},
    )
    if not products:
        part.message = (
            "No other product shares a reviewer with this one."
            if state.min_common <= 1
            else f"No other product shares {state.min_common} reviewers with this one."
        )
    return part


def _similar_reason(measure: str, score: float, reviews: int | None, other: int | None) -> str:
    """Why a product is listed as similar: for Jaccard, the number of people who reviewed both, which the score
    gives exactly (``J = c / (n_a + n_b - c)``, so ``c = J (n_a + n_b) / (1 + J)``); for the other measures, what
    the measure rewards."""
    if measure == Measure.jaccard and reviews is not None and other is not None:
        common = min(round(score * (reviews + other) / (1 + score)), reviews, other)
        return f"{common:,} {'person' if common == 1 else 'people'} reviewed both"
    return MEASURE_REASON.get(Measure(measure), "Often reviewed by the same people")


async def search_part(gw: Gateway, q: str) -> Part:
    """The products whose titles hold every word of ``q``, most reviewed first."""
    if not q:
        return Part(message="Type some words of a product title, or a product id.")
    try:
        found, _ = await _get(gw, search_target(q, SEARCH_LIMIT + 1), "")
    except _Failed as failed:
        return Part(message=failed.message or f"No product matches “{q}”.")
    matches = found.get("data") or []
    if not matches:
        return Part(message=f"No product matches “{q}”. Try other words.")
    how_many = f"More than {SEARCH_LIMIT}" if len(matches) > SEARCH_LIMIT else f"{len(matches)}"
    products = [Product(m["item_id"], m.get("title"), m.get("reviews"), m.get("mean_rating")) for m in matches]
    noun = "product matches" if len(matches) == 1 else "products match"
    return Part(title=f"{how_many} {noun} “{q}”", products=products[:SEARCH_LIMIT], extra={"matches": len(matches)})


async def user_parts(gw: Gateway, user: str) -> dict[str, Part]:
    """The reviewer's recent reviews (similarity service), recommendations by the served default ranker (rating
    service) and "because you liked" (similarity service); for a reviewer the services do not know, one message
    and the popular products the rating service falls back to."""
    unknown = f"We do not know reviewer “{user}”."
    if "/" in user:  # not an id (see hitpath.ident)
        return {"activity": Part(message=unknown)}
    target = recommendations_target(user, LIST_K, None, [])
    if target is None:  # cannot happen: no method, no exclude
        return {"activity": Part(message="Sorry, that cannot be answered.")}
    activity, ranked, because = await asyncio.gather(
        _activity(gw, user, unknown),
        _ranked(
            gw, _get(gw, target, unknown), "Because you reviewed {names}", "Reviewed by people with tastes like yours"
        ),
        _because(gw, user),
    )
    if activity.extra.get("unknown"):
        if ranked.products and ranked.extra.get("fallback"):
            ranked.title = "Popular products"
            activity.message = f"{unknown} Here are popular products instead."
            return {"activity": activity, "ranked": ranked}
        return {"activity": activity}
    return {"activity": activity, "ranked": ranked, "because": because}


async def _activity(gw: Gateway, user: str, unknown: str) -> Part:
    try:
        body, _ = await _get(gw, user_target(user), "")
    except _Failed as failed:
        if failed.message:
            return Part(title="Recently reviewed", message=failed.message)
        return Part(message=unknown, extra={"unknown": True})
    rows = [{**r, "stars": round(float(r["rating"]))} for r in body.get("recent") or []]
    return Part(title="Recently reviewed", extra={"user": body, "recent": rows})


async def _ranked(
    gw: Gateway, call: Awaitable[tuple[dict[str, Any], str | None]], because: str, otherwise: str
) -> Part:
    """A ranked answer of the rating service as a list, with reasons: the history items behind each product
    (``because`` with ``{names}`` filled in), or ``otherwise`` where the ranker cannot name them (iALS); a predicted
    rating where the ranker predicts ratings; popularity where it fell back."""
    try:
        body, version = await call
    except _Failed as failed:
        return Part(title="Recommended for you", message=failed.message)
    model, fallback = body.get("model"), body.get("fallback")
    hits = body.get("data") or []
    products = [Product(h["item_id"], h.get("title")) for h in hits]
    _fill(products, await _facts(gw, [p.item_id for p in products]))
    if model == "latent" and not fallback:
        for p, h in zip(products, hits, strict=True):
            p.predicted = float(h["score"])
            p.reason = f"We think you would rate it {p.predicted:.1f} out of 5"
    else:
        _strengths(products, [float(h["score"]) for h in hits])
        for p, h in zip(products, hits, strict=True):
            if h.get("because"):
                p.reason = because.format(names=_names(h["because"]))
            elif fallback or model == "popular":
                p.reason = f"Popular: {reviews_text(p.reviews)}" if p.reviews is not None else "Popular"
            else:
                p.reason = otherwise
    what = "popularity (a fallback)" if fallback else f"the {model} model"
    part = Part(
        title="Recommended for you",
        products=products,
        details=f"Details: ranked by {what}.{_version(version)}",
        extra={"fallback": fallback, "unknown_items": body.get("unknown_items") or []},
    )
    if not products:
        part.message = "Nothing left to recommend: every product has been reviewed."
    return part


async def _because(gw: Gateway, user: str) -> Part:
    target = recommendations_target(user, LIST_K, Method.similar, [])
    if target is None:  # cannot happen: no exclude
        return Part(title="Because you liked", message="Sorry, that cannot be answered.")
    try:
        body, version = await _get(gw, target, "")
    except _Failed as failed:
        return Part(title="Because you liked", message=failed.message or "No recommendations for this reviewer.")
    hits = body.get("data") or []
    products = [Product(h["item_id"], h.get("title")) for h in hits]
    _fill(products, await _facts(gw, [p.item_id for p in products]))
    _strengths(products, [float(h["score"]) for h in hits])
    for p, h in zip(products, hits, strict=True):
        p.reason = f"Because you liked {_names(h['because'])}"
    part = Part(
        title="Because you liked",
        products=products,
        details=f"Details: products similar to the ones this reviewer rated 4 or more.{_version(version)}",
    )
    if not products:
        part.message = "No product is similar to the ones this reviewer liked."
    return part


async def basket_part(gw: Gateway, state: State) -> Part:
    """The basket's products and its recommendations by the served default ranker (``POST /v1/recommendations``)."""
    part = Part(title="Your basket", note=" ".join(state.notes) or None)
    if not state.basket:
        part.message = "Your basket is empty. Add products with “Add to basket”."
        return part
    payload = {"items": list(state.basket), "k": LIST_K}
    facts, ranked = await asyncio.gather(
        _facts(gw, list(state.basket)),
        _ranked(
            gw,
            _post(gw, "rating", "/v1/recommendations", payload, ""),
            "Goes with {names} in your basket",
            "Often reviewed with what is in your basket",
        ),
    )
    part.products = [Product(i) for i in state.basket]
    _fill(part.products, facts)
    unknown = ranked.extra.get("unknown_items") or []
    if unknown:
        part.note = " ".join([*state.notes, f"Not known here, so not used: {', '.join(unknown)}."])
    ranked.title = "Goes well with your basket"
    if ranked.extra.get("fallback"):
        ranked.title = "Popular products"
        ranked.note = "We do not know these products yet, so here are popular ones."
    if ranked.products or ranked.message:
        part.extra["ranked"] = ranked
    return part


async def score_part(gw: Gateway, text: str, stars: str | None) -> Part:
    """What a review's text predicts: its star rating, how likely it is a verified purchase, and the words that
    raised and lowered the rating most (``POST /v1/reviews/score``)."""
    if not text.strip():
        return Part(message="Type the text of a review.")
    if len(text) > MAX_TEXT_CHARS:
        return Part(message=f"A review can have at most {MAX_TEXT_CHARS:,} characters; this one has {len(text):,}.")
    review: dict[str, Any] = {"text": text}
    if stars and stars.strip().isdigit():
        review["rating"] = int(stars)
    not_served = "The served version has no review-text model (its data had no review text)."
    try:
        body, version = await _post(gw, "rating", SCORE_PATH, review, not_served)
    except _Failed as failed:
        return Part(message=failed.message)
    terms = body.get("top_terms") or []
    return Part(
        title="What this review says",
        details=f"Details: the text model of the served version.{_version(version)}",
        extra={
            "score": body,
            "raised": [t["term"] for t in terms if t["weight"] > 0],
            "lowered": [t["term"] for t in terms if t["weight"] < 0],
        },
    )


async def context(gw: Gateway, params: Mapping[str, str]) -> dict[str, Any]:
    """Everything the template ``index.html`` renders for a request's query parameters."""
    state = State.of(params)
    calls: dict[str, Awaitable[Any]] = {"home": home_part(gw)}  # the example ids, on every view
    if state.item:
        calls["item"] = item_part(gw, state)
    elif state.q is not None:
        calls["search"] = search_part(gw, state.q)
    if state.user:
        calls["user"] = user_parts(gw, state.user)
    if state.basket or state.basket_given:
        calls["basket"] = basket_part(gw, state)
    if state.review is not None:
        calls["score"] = score_part(gw, state.review, state.stars)
    done = dict(zip(calls, await asyncio.gather(*calls.values()), strict=True))
    search = done.get("search")
    if search is not None and search.products and state.q:
        first = search.products[0].item_id
        if search.extra["matches"] == 1 or first == state.q:  # one match, or the product's id: open the product
            opened = replace(state, item=first, q=None)
            done["item"] = await item_part(gw, opened)
            done["opened_from"] = state.q
            del done["search"]
            state = opened
    home: Part = done["home"]
    users = home.extra.get("users") or []
    return {
        "state": state,
        "measures": [m.value for m in Measure],
        "reviews": reviews_text,
        "home": home,
        "example_item": home.products[0] if home.products else None,
        "example_user": users[0]["user_id"] if users else None,
        "user_message": "Type a reviewer id." if state.user == "" else None,
        **{name: part for name, part in done.items() if name != "home"},
    }

"""Routes of the similarity service: validate, call the core, map to the wire schemas."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends

from chorus.services.similarity.activity import RECENT, Activity, day
from chorus.services.similarity.live import LiveView
from chorus.services.similarity.model import SimilarityModel
from chorus.shared.contract.errors import EventsUnavailable, InvalidInput, NotFound, NotReady
from chorus.shared.contract.names import Measure, Method
from chorus.shared.contract.params import (
    DEFAULT_K,
    DEFAULT_MIN_COMMON,
    DEFAULT_SEARCH_LIMIT,
    ExcludeIds,
    ItemId,
    K,
    MinCommon,
    SearchLimit,
    SearchText,
    UserId,
    error_responses,
)
from chorus.shared.contract.schemas import (
    ItemPublic,
    ItemsPublic,
    PredictionsPublic,
    PredictRequest,
    RankedRecommendationsPublic,
    SimilarItemsPublic,
    SimilarUsersPublic,
    StatsPublic,
    TopPublic,
    UserPublic,
)
from chorus.shared.events.rows import acted_on, purchase_rating, rows_of
from chorus.shared.http.limits import OffLoopRoute
from chorus.shared.serving import Loaded, model_dependency

router = APIRouter(
    prefix="/v1",
    tags=["similarity"],
    responses=error_responses(
        NotFound,
        InvalidInput,
        NotReady,
        EventsUnavailable,
        s503="No version loaded yet, or the event store (CHORUS_EVENTS_URL) cannot be read",
    ),
    route_class=OffLoopRoute,
)

TOP_K = 5  # items and users of GET /v1/stats/top unless k says otherwise

ModelDep = Annotated[Loaded[SimilarityModel], Depends(model_dependency)]


def view_dependency(loaded: ModelDep) -> LiveView:
    """The served version with every event the store holds now folded in (503 when the store cannot be read)."""
    return loaded.model.view()


ViewDep = Annotated[LiveView, Depends(view_dependency)]


@router.get("/items/{item_id}/similar", response_model=SimilarItemsPublic)
def similar_items(
    view: ViewDep,
    item_id: ItemId,
    k: K = DEFAULT_K,
    measure: Measure = Measure.jaccard,
    min_common: MinCommon = DEFAULT_MIN_COMMON,
) -> dict[str, Any]:
    """The k items most similar to an item (people who reviewed it also reviewed ...), best first."""
    found, scores = view.similar_items(view.item_index(item_id), k, measure, min_common)
    data = [
        {"item_id": view.item_id(j), "title": view.title(j), "score": s}
        for j, s in zip(found.tolist(), scores.tolist(), strict=True)
    ]
    return {"item_id": item_id, "measure": measure.value, "data": data, "count": len(data)}


@router.get("/users/{user_id}/similar", response_model=SimilarUsersPublic)
def similar_users(
    view: ViewDep,
    user_id: UserId,
    k: K = DEFAULT_K,
    measure: Measure = Measure.jaccard,
    min_common: MinCommon = DEFAULT_MIN_COMMON,
) -> dict[str, Any]:
    """The k users most similar to a user (over the items they reviewed), best first."""
    found, scores = view.similar_users(view.user_index(user_id), k, measure, min_common)
    data = [{"user_id": view.user_id(v), "score": s} for v, s in zip(found.tolist(), scores.tolist(), strict=True)]
    return {"user_id": user_id, "measure": measure.value, "data": data, "count": len(data)}


@router.get("/users/{user_id}/recommendations", response_model=RankedRecommendationsPublic)
def recommendations(
    view: ViewDep, loaded: ModelDep, user_id: UserId, k: K = DEFAULT_K, exclude: ExcludeIds = None
) -> dict[str, Any]:
    """Items like the ones the user liked (rated 4 or more), each naming the liked item that weighed most
    (``model: "similar"``, in the shape of every other method); never an item the user reviewed, bought or
    viewed, nor one of ``exclude``. An unknown user is a 404 (this method has no fallback)."""
    u = view.user_index(user_id)
    asked = list(dict.fromkeys(exclude or []))
    named = view.items_named(asked) if asked else np.zeros(0, dtype=np.int64)
    known = {view.item_id(i) for i in named.tolist()}
    feed = loaded.model.feed
    if feed is not None:
        named = np.union1d(named, view.items_named(acted_on(feed.live(user_id).events)))
    rec = view.recommend(u, k, exclude=named if named.shape[0] else None)
    data = [
        {
            "item_id": view.item_id(j),
            "title": view.title(j),
            "score": s,
            "because": [{"item_id": view.item_id(b), "title": view.title(b)}],
        }
        for j, s, b in zip(rec.items.tolist(), rec.scores.tolist(), rec.because.tolist(), strict=True)
    ]
    return {
        "user_id": user_id,
        "model": Method.similar.value,
        "data": data,
        "count": len(data),
        "fallback": None,
        "unknown_exclude": [e for e in asked if e not in known],
    }


@router.post("/predict", response_model=PredictionsPublic)
def predict(view: ViewDep, body: PredictRequest) -> dict[str, Any]:
    """The similarity-weighted rating heuristic: the user's ratings weighted by each rated item's similarity to
    the item, clipped to the rating scale.

    Where the user or item is unknown, or no rated item is similar, the global mean is returned and
    ``fallback`` says ``"global_mean"``."""
    users = [p.user_id for p in body.pairs]
    items = [p.item_id for p in body.pairs]
    scale = view.catalog.scale
    pred = view.predict(users, items, low=scale.low, high=scale.high)
    data = [
        {"user_id": u, "item_id": i, "prediction": round(r, 4), "fallback": "global_mean" if bad else None}
        for u, i, r, bad in zip(users, items, pred.rating.tolist(), pred.impossible.tolist(), strict=True)
    ]
    return {"data": data, "count": len(data)}


@router.get("/items/{item_id}", response_model=ItemPublic)
def item(view: ViewDep, item_id: ItemId) -> dict[str, Any]:
    """An item's title, number of reviews and mean rating."""
    return view.item_public(view.item_index(item_id))


@router.get("/items", response_model=ItemsPublic)
def search_items(view: ViewDep, q: SearchText, limit: SearchLimit = DEFAULT_SEARCH_LIMIT) -> dict[str, Any]:
    """Items whose titles contain every word searched for, most reviewed first (an exact id first); an empty
    ``data`` list when nothing matches."""
    found = view.catalog.search(q, limit)
    data = [view.item_public(i) for i in found.tolist()]
    return {"q": q, "data": data, "count": len(data)}


@router.get("/stats", response_model=StatsPublic)
def stats(loaded: ModelDep) -> dict[str, Any]:
    """Statistics of the dataset behind the served version."""
    return {"version": loaded.version, "stats": loaded.model.catalog.stats}


def _activity(loaded: Loaded[SimilarityModel]) -> Activity:
    activity = loaded.model.activity
    if activity is None:  # a model built by hand, not by load_model
        raise NotReady(f"version {loaded.version} was loaded without its users' reviews")
    return activity


def _user_public(view: LiveView, u: int) -> dict[str, Any]:
    """A reviewer's id, number of reviews and mean rating over the merged rows (events folded in)."""
    count, mean, _ = view.overlay.users.row_stats(np.array([u]))
    return {"user_id": view.user_id(u), "reviews": int(count[0]), "mean_rating": round(float(mean[0]), 4)}


@router.get("/stats/top", response_model=TopPublic)
def top(view: ViewDep, loaded: ModelDep, k: K = TOP_K) -> dict[str, Any]:
    """The k most reviewed items and the k reviewers with the most reviews in the served version, most first (ties
    by id), with their figures as they are now; a forgotten reviewer is left out."""
    cat, activity = view.catalog, _activity(loaded)
    items = np.lexsort((np.arange(cat.n_items), -cat.item_reviews))[:k]
    users: list[dict[str, Any]] = []
    for u in activity.busiest.tolist():
        if len(users) == k:
            break
        try:
            users.append(_user_public(view, view.user_index(str(cat.user_ids[u]))))
        except NotFound:  # forgotten since the version was trained
            continue
    return {"version": loaded.version, "items": [view.item_public(i) for i in items.tolist()], "users": users}


@router.get("/users/{user_id}", response_model=UserPublic)
def user(view: ViewDep, loaded: ModelDep, user_id: UserId) -> dict[str, Any]:
    """A reviewer's number of reviews, mean rating and newest reviews (at most 5, newest first), events included:
    their reviews, ratings and purchases since the version (as ``chorus.shared.events.rows`` makes rows of them)
    and, unless they were forgotten since, the version's reviews of the items they have not reviewed again."""
    u = view.user_index(user_id)
    cat, activity = view.catalog, _activity(loaded)
    rows: dict[str, tuple[float, int, float]] = {}  # item id -> (timestamp, seq, rating)
    forgotten = False
    feed = loaded.model.feed
    if feed is not None:
        live = feed.live(user_id)
        forgotten = live.forgotten
        for r in rows_of(live.events, purchase_rating(cat.scale.low, cat.scale.high)):
            rows[r.item_id] = (r.timestamp, r.seq, r.rating)
    in_version = int(cat.user_indices([user_id])[0])
    if in_version >= 0 and not forgotten:
        items, ratings, stamps = activity.recent(in_version)
        for i, rating, stamp in zip(items.tolist(), ratings.tolist(), stamps.tolist(), strict=True):
            rows.setdefault(str(cat.item_ids[i]), (float(stamp), 0, rating))  # an event re-rated the item: it wins
    newest = sorted(rows.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:RECENT]
    titles = cat.item_indices([item_id for item_id, _ in newest])
    recent = [
        {"item_id": item_id, "title": cat.title(int(i)) if i >= 0 else None, "rating": rating, "date": day(stamp)}
        for (item_id, (stamp, _, rating)), i in zip(newest, titles.tolist(), strict=True)
    ]
    return {**_user_public(view, u), "user_id": user_id, "recent": recent}

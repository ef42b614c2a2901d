"""Routes of the similarity service: validate, call the core, map to the wire schemas."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends

from chorus.services.similarity.model import SimilarityModel
from chorus.shared.contract.errors import InvalidInput, NotFound, NotReady
from chorus.shared.contract.names import Measure
from chorus.shared.contract.params import (
    DEFAULT_K,
    DEFAULT_MIN_COMMON,
    DEFAULT_SEARCH_LIMIT,
    ItemId,
    K,
    MinCommon,
    SearchLimit,
    SearchText,
    UserId,
    error_responses,
)
from chorus.shared.contract.schemas import (
    BecauseRecommendationsPublic,
    ItemPublic,
    ItemsPublic,
    PredictionsPublic,
    PredictRequest,
    SimilarItemsPublic,
    SimilarUsersPublic,
    StatsPublic,
    TopPublic,
    UserPublic,
)
from chorus.shared.http.limits import OffLoopRoute
from chorus.shared.serving import Loaded, model_dependency

router = APIRouter(
    prefix="/v1",
    tags=["similarity"],
    responses=error_responses(NotFound, InvalidInput, NotReady),
    route_class=OffLoopRoute,
)

TOP_K = 5  # items and users of GET /v1/stats/top unless k says otherwise

ModelDep = Annotated[Loaded[SimilarityModel], Depends(model_dependency)]


@router.get("/items/{item_id}/similar", response_model=SimilarItemsPublic)
def similar_items(
    loaded: ModelDep,
    item_id: ItemId,
    k: K = DEFAULT_K,
    measure: Measure = Measure.jaccard,
    min_common: MinCommon = DEFAULT_MIN_COMMON,
) -> dict[str, Any]:
    """The k items most similar to an item (people who reviewed it also reviewed ...), best first."""
    m = loaded.model
    found, scores = m.index.similar_items(m.catalog.item_index(item_id), k, measure, min_common)
    data = [
        {"item_id": str(m.catalog.item_ids[j]), "title": m.catalog.title(j), "score": s}
        for j, s in zip(found.tolist(), scores.tolist(), strict=True)
    ]
    return {"item_id": item_id, "measure": measure.value, "data": data, "count": len(data)}


@router.get("/users/{user_id}/similar", response_model=SimilarUsersPublic)
def similar_users(
    loaded: ModelDep,
    user_id: UserId,
    k: K = DEFAULT_K,
    measure: Measure = Measure.jaccard,
    min_common: MinCommon = DEFAULT_MIN_COMMON,
) -> dict[str, Any]:
    """The k users most similar to a user (over the items they reviewed), best first."""
    m = loaded.model
    found, scores = m.index.similar_users(m.catalog.user_index(user_id), k, measure, min_common)
    data = [
        {"user_id": str(m.catalog.user_ids[v]), "score": s}
        for v, s in zip(found.tolist(), scores.tolist(), strict=True)
    ]
    return {"user_id": user_id, "measure": measure.value, "data": data, "count": len(data)}


@router.get("/users/{user_id}/recommendations", response_model=BecauseRecommendationsPublic)
def recommendations(loaded: ModelDep, user_id: UserId, k: K = DEFAULT_K) -> dict[str, Any]:
    """Items like the ones the user liked (rated 4 or more), each naming the liked item that weighed most."""
    m = loaded.model
    rec = m.index.recommend(m.catalog.user_index(user_id), k)
    cat = m.catalog
    data = [
        {
            "item_id": str(cat.item_ids[j]),
            "title": cat.title(j),
            "score": s,
            "because": {"item_id": str(cat.item_ids[b]), "title": cat.title(b)},
        }
        for j, s, b in zip(rec.items.tolist(), rec.scores.tolist(), rec.because.tolist(), strict=True)
    ]
    return {"user_id": user_id, "data": data, "count": len(data)}


@router.post("/predict", response_model=PredictionsPublic)
def predict(loaded: ModelDep, body: PredictRequest) -> dict[str, Any]:
    """The similarity-weighted rating heuristic: the user's ratings weighted by each rated item's similarity to
    the item, clipped to the rating scale.

    Where the user or item is unknown, or no rated item is similar, the global mean is returned and
    ``fallback`` says ``"global_mean"``."""
    m = loaded.model
    users = [p.user_id for p in body.pairs]
    items = [p.item_id for p in body.pairs]
    scale = m.catalog.scale
    pred = m.index.predict(m.catalog.user_indices(users), m.catalog.item_indices(items), low=scale.low, high=scale.high)
    data = [
        {"user_id": u, "item_id": i, "prediction": round(r, 4), "fallback": "global_mean" if bad else None}
        for u, i, r, bad in zip(users, items, pred.rating.tolist(), pred.impossible.tolist(), strict=True)
    ]
    return {"data": data, "count": len(data)}


@router.get("/items/{item_id}", response_model=ItemPublic)
def item(loaded: ModelDep, item_id: ItemId) -> dict[str, Any]:
    """An item's title, number of reviews and mean rating."""
    cat = loaded.model.catalog
    return cat.item_public(cat.item_index(item_id))


@router.get("/items", response_model=ItemsPublic)
def search_items(loaded: ModelDep, q: SearchText, limit: SearchLimit = DEFAULT_SEARCH_LIMIT) -> dict[str, Any]:
    """Items whose titles contain every word searched for, most reviewed first (an exact id first); an empty
    ``data`` list when nothing matches."""
    cat = loaded.model.catalog
    found = cat.search(q, limit)
    data = [cat.item_public(i) for i in found.tolist()]
    return {"q": q, "data": data, "count": len(data)}


@router.get("/stats", response_model=StatsPublic)
def stats(loaded: ModelDep) -> dict[str, Any]:
    """Statistics of the dataset behind the served version."""
    return {"version": loaded.version, "stats": loaded.model.catalog.stats}


@router.get("/stats/top", response_model=TopPublic)
def top(loaded: ModelDep, k: K = TOP_K) -> dict[str, Any]:
    """The k most reviewed items and the k reviewers with the most reviews, most first (ties by id)."""
    m = loaded.model
    cat, act = m.catalog, m.activity
    items = np.lexsort((np.arange(cat.n_items), -cat.item_reviews))[:k]
    users = [
        {"user_id": str(cat.user_ids[u]), "reviews": int(act.reviews[u]), "mean_rating": round(float(act.mean[u]), 4)}
        for u in act.busiest[:k].tolist()
    ]
    return {"version": loaded.version, "items": [cat.item_public(i) for i in items.tolist()], "users": users}


@router.get("/users/{user_id}", response_model=UserPublic)
def user(loaded: ModelDep, user_id: UserId) -> dict[str, Any]:
    """A reviewer's number of reviews, mean rating and newest reviews (newest first, at most 5)."""
    m = loaded.model
    cat, act = m.catalog, m.activity
    u = cat.user_index(user_id)
    items, ratings, dates = act.recent(u)
    recent = [
        {"item_id": str(cat.item_ids[i]), "title": cat.title(i), "rating": r, "date": d}
        for i, r, d in zip(items.tolist(), ratings.tolist(), dates.tolist(), strict=True)
    ]
    return {
        "user_id": user_id,
        "reviews": int(act.reviews[u]),
        "mean_rating": round(float(act.mean[u]), 4),
        "recent": recent,
    }

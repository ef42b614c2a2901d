"""Routes of the rating service: validate, call the model, map to the wire schemas."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from chorus.services.rating.app import RatingService
from chorus.services.rating.core import FALLBACKS
from chorus.shared.schemas import ErrorPublic, ModelRecommendationsPublic, Prediction, PredictionsPublic, PredictRequest
from chorus.shared.serving import Loaded, model_dependency
from fastapi import APIRouter, Depends, Path, Query

ERRORS = {
    422: {"model": ErrorPublic, "description": "Invalid parameter"},
    503: {"model": ErrorPublic, "description": "No artifact version loaded yet"},
}

router = APIRouter(prefix="/v1", tags=["rating"], responses=ERRORS)

ServiceDep = Annotated[Loaded[RatingService], Depends(model_dependency)]
Id = Annotated[str, Query(min_length=1, max_length=200)]


def _predict(svc: RatingService, users: list[str], items: list[str]) -> list[dict]:
    pred = svc.model.predict(svc.catalog.user_indices(users), svc.catalog.item_indices(items))
    return [
        {"user_id": u, "item_id": i, "prediction": round(r, 4), "fallback": FALLBACKS[f]}
        for u, i, r, f in zip(users, items, pred.rating.tolist(), pred.fallback.tolist(), strict=True)
    ]


@router.get("/predict", response_model=Prediction)
def predict(loaded: ServiceDep, user_id: Id, item_id: Id) -> dict:
    """The predicted star rating of a user for an item, clipped to the rating scale.

    An unknown user or item falls back (``fallback``: ``"item_bias"`` for an unknown user, ``"user_bias"`` for
    an unknown item, ``"global_mean"`` for both)."""
    return _predict(loaded.model, [user_id], [item_id])[0]


@router.post("/predict", response_model=PredictionsPublic)
def predict_batch(loaded: ServiceDep, body: PredictRequest) -> dict:
    """Predictions for up to 10,000 (user, item) pairs, in the order given."""
    data = _predict(loaded.model, [p.user_id for p in body.pairs], [p.item_id for p in body.pairs])
    return {"data": data, "count": len(data)}


@router.get("/users/{user_id}/recommendations", response_model=ModelRecommendationsPublic)
def recommendations(
    loaded: ServiceDep,
    user_id: Annotated[str, Path(min_length=1, max_length=200)],
    k: Annotated[int, Query(ge=1, le=500, description="How many items (1 to 500)")] = 10,
) -> dict:
    """The user's highest predicted ratings among items they have not reviewed.

    An unknown user gets the most popular well-rated items instead, with ``fallback: "popular"``."""
    svc = loaded.model
    u = svc.catalog.user_indices([user_id])[0]
    exclude = svc.reviewed(int(u)) if u >= 0 else np.zeros(0, dtype=np.int32)
    rec = svc.model.recommend(int(u), k, exclude=exclude)
    cat = svc.catalog
    data = [
        {"item_id": str(cat.item_ids[i]), "title": cat.title(i), "predicted_rating": round(r, 4)}
        for i, r in zip(rec.items.tolist(), rec.ratings.tolist(), strict=True)
    ]
    return {"user_id": user_id, "data": data, "count": len(data), "fallback": rec.fallback}

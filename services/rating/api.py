"""Routes of the rating service: validate, call the model, map to the wire schemas."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends

from chorus.services.rating.models.base import FALLBACKS
from chorus.services.rating.service import RatingService
from chorus.shared.errors import InvalidInput, NotReady
from chorus.shared.params import DEFAULT_K, ItemIdQuery, K, UserId, UserIdQuery, error_responses
from chorus.shared.schemas import ModelRecommendationsPublic, Prediction, PredictionsPublic, PredictRequest
from chorus.shared.serving import Loaded, model_dependency

router = APIRouter(prefix="/v1", tags=["rating"], responses=error_responses(InvalidInput, NotReady))

ServiceDep = Annotated[Loaded[RatingService], Depends(model_dependency)]


def _predict(svc: RatingService, users: list[str], items: list[str]) -> list[dict[str, Any]]:
    pred = svc.model.predict(svc.catalog.user_indices(users), svc.catalog.item_indices(items))
    return [
        {"user_id": u, "item_id": i, "prediction": round(r, 4), "fallback": FALLBACKS[f]}
        for u, i, r, f in zip(users, items, pred.rating.tolist(), pred.fallback.tolist(), strict=True)
    ]


@router.get("/predict", response_model=Prediction)
def predict(loaded: ServiceDep, user_id: UserIdQuery, item_id: ItemIdQuery) -> dict[str, Any]:
    """The predicted star rating of a user for an item, clipped to the rating scale.

    An unknown user or item falls back (``fallback``: ``"item_bias"`` for an unknown user, ``"user_bias"`` for
    an unknown item, ``"global_mean"`` for both)."""
    return _predict(loaded.model, [user_id], [item_id])[0]


@router.post("/predict", response_model=PredictionsPublic)
def predict_batch(loaded: ServiceDep, body: PredictRequest) -> dict[str, Any]:
    """Predictions for up to 10,000 (user, item) pairs, in the order given."""
    data = _predict(loaded.model, [p.user_id for p in body.pairs], [p.item_id for p in body.pairs])
    return {"data": data, "count": len(data)}


@router.get("/users/{user_id}/recommendations", response_model=ModelRecommendationsPublic)
def recommendations(loaded: ServiceDep, user_id: UserId, k: K = DEFAULT_K) -> dict[str, Any]:
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

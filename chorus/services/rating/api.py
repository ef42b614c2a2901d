"""Routes of the rating service: validate, call the model, map to the wire schemas.

A route about users reads each one's live events from the event store once (:class:`LiveEvents`, a 503 naming the
store when it cannot be reached) and hands them to the service; the other routes never touch the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from chorus.services.rating.live import LiveEvents
from chorus.services.rating.models.base import FALLBACKS
from chorus.services.rating.service import LATENT, RatingService, Recommendation
from chorus.shared.contract.errors import EventsUnavailable, InvalidInput, NotFound, NotReady
from chorus.shared.contract.names import VERSION_HEADER, canonical_method
from chorus.shared.contract.params import (
    DEFAULT_K,
    ExcludeIds,
    ItemIdQuery,
    K,
    RatingMethodQuery,
    UserId,
    UserIdQuery,
    error_responses,
)
from chorus.shared.contract.reviews import SCORE_OPENAPI, SCORE_PATH, ReviewBody, ReviewScorePublic
from chorus.shared.contract.schemas import (
    BasketRecommendationsPublic,
    BasketRequest,
    Prediction,
    PredictionsPublic,
    PredictRequest,
    RankedRecommendationsPublic,
)
from chorus.shared.http.limits import OffLoopRoute
from chorus.shared.report_component import MEDIA_TYPE
from chorus.shared.serving import Loaded, model_dependency

router = APIRouter(
    prefix="/v1", tags=["rating"], responses=error_responses(InvalidInput, NotReady), route_class=OffLoopRoute
)

ServiceDep = Annotated[Loaded[RatingService], Depends(model_dependency)]


def events_dependency(request: Request) -> LiveEvents:
    """The process's event store (:class:`LiveEvents`, which answers None for every read when none is set)."""
    events: LiveEvents = request.app.state.events
    return events


EventsDep = Annotated[LiveEvents, Depends(events_dependency)]
#: What a route that reads a user's events may also answer.
PERSONAL = error_responses(
    NotReady, EventsUnavailable, s503="No servable artifact yet, or the event store cannot be reached"
)


def _predict(svc: RatingService, events: LiveEvents, users: list[str], items: list[str]) -> list[dict[str, Any]]:
    lives = {user: events.live(user, svc.cutoff) for user in dict.fromkeys(users)} if events.enabled else None
    pred = svc.predict(users, items, lives)
    return [
        {"user_id": u, "item_id": i, "prediction": round(r, 4), "fallback": FALLBACKS[f]}
        for u, i, r, f in zip(users, items, pred.rating.tolist(), pred.fallback.tolist(), strict=True)
    ]


def _ranked(svc: RatingService, rec: Recommendation) -> dict[str, Any]:
    """The wire form of a :class:`Recommendation`: ids and titles for every item and reason."""
    cat = svc.catalog

    def ref(i: int) -> dict[str, Any]:
        return {"item_id": str(cat.item_ids[i]), "title": cat.title(i)}

    because = rec.because.tolist() if rec.because is not None else [None] * len(rec.items)
    # star ratings to 4 decimals, as /v1/predict answers them; a ranker's scores to 6 significant digits (their
    # float32 tails say nothing; the order was decided on the full values)
    if rec.model == LATENT:
        scores = [round(s, 4) for s in rec.scores.tolist()]
    else:
        scores = [float(f"{s:.6g}") for s in rec.scores.tolist()]
    data = [
        {**ref(i), "score": s, "because": None if why is None else [ref(j) for j in why if j >= 0]}
        for i, s, why in zip(rec.items.tolist(), scores, because, strict=True)
    ]
    return {
        "model": rec.model,
        "data": data,
        "count": len(data),
        "fallback": rec.fallback,
        "unknown_exclude": rec.unknown_exclude,
    }


@router.get("/predict", response_model=Prediction, responses=PERSONAL)
def predict(loaded: ServiceDep, events: EventsDep, user_id: UserIdQuery, item_id: ItemIdQuery) -> dict[str, Any]:
    """The predicted star rating of a user for an item, clipped to the rating scale.

    An unknown user or item is not an error (never 404): the prediction falls back, flagged in ``fallback``
    (``"item_bias"`` for an unknown user, ``"user_bias"`` for an unknown item, ``"global_mean"`` for both). A
    user the model was not trained on but who has rated items since (events) is folded in from those ratings."""
    return _predict(loaded.model, events, [user_id], [item_id])[0]


@router.post("/predict", response_model=PredictionsPublic, responses=PERSONAL)
def predict_batch(loaded: ServiceDep, events: EventsDep, body: PredictRequest) -> dict[str, Any]:
    """Predictions for up to 10,000 (user, item) pairs, in the order given; unknown ids fall back, and new users
    with ratings since are folded in, as for a single prediction."""
    data = _predict(loaded.model, events, [p.user_id for p in body.pairs], [p.item_id for p in body.pairs])
    return {"data": data, "count": len(data)}


@router.get("/users/{user_id}/recommendations", response_model=RankedRecommendationsPublic, responses=PERSONAL)
def recommendations(
    loaded: ServiceDep,
    events: EventsDep,
    user_id: UserId,
    k: K = DEFAULT_K,
    method: RatingMethodQuery = None,
    exclude: ExcludeIds = None,
) -> dict[str, Any]:
    """The user's top-k items by a ranker of the served version (default: its default ranker), or by predicted
    rating (``method=latent``), never an item they reviewed or acted on since (events, views included) or one of
    ``exclude``. Their events since the version was trained count at once.

    A user with no history gets popular items instead, with ``fallback: "popular"``; a method the version does
    not serve is a 422 naming those it does."""
    svc = loaded.model
    live = events.live(user_id, svc.cutoff)
    method_name = None if method is None else canonical_method(method).value
    rec = svc.recommend_user(user_id, k, method_name, exclude or [], live)
    return {"user_id": user_id, **_ranked(svc, rec)}


@router.post("/recommendations", response_model=BasketRecommendationsPublic)
def basket_recommendations(loaded: ServiceDep, body: BasketRequest) -> dict[str, Any]:
    """The top-k items for an anonymous basket (item ids, as if one user had reviewed them) by a ranker, never
    a basket item or one of ``exclude``.

    Unknown ids are listed in ``unknown_items``; with no known item the answer is popular items, with
    ``fallback: "popular"``."""
    svc = loaded.model
    method = None if body.method is None else body.method.value
    rec = svc.recommend_basket(body.items, body.k, method, body.exclude)
    return {**_ranked(svc, rec), "unknown_items": rec.unknown_items}


@router.get(
    "/report",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}}, "description": "The report, one HTML page"},
        **error_responses(NotFound),
    },
)
def report(loaded: ServiceDep) -> Response:
    """The served version's evaluation report: one self-contained HTML page of tables and plots (what
    ``chorus train`` measured when it built the version)."""
    if loaded.model.report is None:
        raise NotFound(f"version {loaded.version} has no evaluation report: versions that chorus train builds have one")
    # a Response returned whole does not take the headers the dependency set: the version goes on again
    return Response(loaded.model.report, media_type=MEDIA_TYPE, headers={VERSION_HEADER: loaded.version})


@router.post(
    SCORE_PATH.removeprefix("/v1"),
    response_model=ReviewScorePublic,
    openapi_extra=SCORE_OPENAPI,
    responses=error_responses(NotFound),
)
def score_review(loaded: ServiceDep, body: ReviewBody) -> dict[str, Any]:
    """What a review's text predicts: its star rating, the probability that it is a verified purchase, and the
    terms that moved the rating most. Empty text, text over 20,000 characters or a body that is not UTF-8 is a
    422; a version trained on data without review text answers 404."""
    svc = loaded.model
    if svc.scorer is None:
        raise NotFound(f"version {svc.version} has no review-text model: its data had no review text")
    item = -1 if body.item_id is None else int(svc.catalog.item_indices([body.item_id])[0])
    scored = svc.scorer.score(body.text, body.rating, item)
    return {
        "predicted_rating": round(scored.predicted_rating, 4),
        "verified_probability": None if scored.verified_probability is None else round(scored.verified_probability, 4),
        "top_terms": [{"term": t, "weight": round(w, 4)} for t, w in scored.top_terms],
        "item_id": body.item_id,
        "item_known": None if body.item_id is None else item >= 0,
    }

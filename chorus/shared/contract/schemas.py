"""The wire contract: request and response models of the public API and of the services behind it.

The similarity and rating services answer with these models and the gateway documents its routes with them
(it passes the bodies through byte for byte), so one definition serves all three.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from chorus.shared.contract.kinds import ranker_methods
from chorus.shared.contract.names import DEFAULT_K, MAX_ID_LENGTH, MAX_K, MAX_PAIRS, Measure, Ranking


class ErrorPublic(BaseModel):
    """Every error: a machine-readable type and a message a person can act on."""

    type: str = Field(examples=["not_found"])
    detail: str = Field(examples=["unknown item 'B000XYZ'"])


class SimilarItem(BaseModel):
    item_id: str = Field(examples=["B0002E1G5C"])
    title: str | None = Field(None, examples=["Fender Medium Picks, 12 Pack"])
    score: float = Field(examples=[0.4285714286])


class SimilarItemsPublic(BaseModel):
    """The items most similar to one item, best first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "item_id": "B0002GLDQM",
                "measure": "jaccard",
                "data": [{"item_id": "B0002E1G5C", "title": "Fender Medium Picks, 12 Pack", "score": 0.4285714286}],
                "count": 1,
            }
        }
    )
    item_id: str
    measure: Measure
    data: list[SimilarItem]
    count: int


class SimilarUser(BaseModel):
    user_id: str = Field(examples=["A2IBPI20UZIR0U"])
    score: float = Field(examples=[0.25])


class SimilarUsersPublic(BaseModel):
    """The users most similar to one user, best first."""

    user_id: str
    measure: Measure
    data: list[SimilarUser]
    count: int


class ItemRef(BaseModel):
    item_id: str = Field(examples=["B0002GLDQM"])
    title: str | None = Field(None, examples=["Guitar Strap"])


class RankedItem(BaseModel):
    item_id: str = Field(examples=["B0002E1G5C"])
    title: str | None = Field(None, examples=["Fender Medium Picks, 12 Pack"])
    score: float = Field(
        examples=[0.318],
        description="the ranker's score, higher is better (for latent: the predicted star rating; for popular: "
        "the number of reviews)",
    )
    because: list[ItemRef] | None = Field(
        None,
        description="the reviewed (or basket) items that contributed most to the score, best first (at most 3; "
        "for similar: the liked item that weighed most); null when the ranker cannot say",
    )


_RANKED_EXAMPLE: dict[str, Any] = {
    "item_id": "B0002E1G5C",
    "title": "Fender Medium Picks, 12 Pack",
    "score": 0.318,
    "because": [{"item_id": "B0002GLDQM", "title": "Guitar Strap"}],
}


class RankedRecommendationsPublic(BaseModel):
    """A user's top-k items by one method (``model``: a ranker, ``latent`` or ``similar``), among items they have
    not reviewed and not excluded.

    ``fallback: "popular"`` says the user is unknown and these are popular items instead (``similar`` has no
    fallback: an unknown user is a 404).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "A2IBPI20UZIR0U",
                "model": "ease",
                "data": [_RANKED_EXAMPLE],
                "count": 1,
                "fallback": None,
                "unknown_exclude": [],
            }
        }
    )
    user_id: str
    model: str = Field(description="the method that answered: a ranker's kind, latent or similar", examples=["ease"])
    data: list[RankedItem]
    count: int
    fallback: Literal["popular"] | None = Field(None, description='"popular" when the user is unknown')
    unknown_exclude: list[str] = Field(
        default_factory=list, description="ids of ``exclude`` the served data does not know (ignored)"
    )


ItemIdField = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


def _json_integer(value: Any) -> Any:
    """What JSON Schema calls an integer: a number with no fractional part (``465.0`` too), never a string or a
    boolean (pydantic's lax mode would take ``"465"`` and ``true``)."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer (a JSON number), not a string or a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
"""An integer of a JSON body, as JSON Schema's ``integer`` means it."""


class BasketRequest(BaseModel):
    """An anonymous basket or session: recommend for these items, as if one user had reviewed them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"items": ["B0002GLDQM", "B0002E1G5C"], "k": 10, "exclude": []}},
    )
    items: list[ItemIdField] = Field(
        default_factory=list, max_length=MAX_PAIRS, description=f"item ids (at most {MAX_PAIRS})"
    )
    k: JsonInt = Field(DEFAULT_K, ge=1, le=MAX_K, description=f"how many results (1 to {MAX_K})")
    exclude: list[ItemIdField] = Field(
        default_factory=list, max_length=MAX_K, description=f"item ids never to return (at most {MAX_K})"
    )
    method: Ranking | None = Field(
        None,
        description=f"a ranker ({', '.join(ranker_methods())}); default: the served version's default ranker",
    )


class BasketRecommendationsPublic(BaseModel):
    """The top-k items for a basket, from one ranker (``model``), never an item of the basket or of ``exclude``.

    ``fallback: "popular"`` says no item of the basket is known (or it is empty): these are popular items.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "ease",
                "data": [_RANKED_EXAMPLE],
                "count": 1,
                "fallback": None,
                "unknown_items": ["NO-SUCH-ID"],
                "unknown_exclude": [],
            }
        }
    )
    model: str = Field(description="the ranker that answered", examples=["ease"])
    data: list[RankedItem]
    count: int
    fallback: Literal["popular"] | None = Field(None, description='"popular" when no basket item is known')
    unknown_items: list[str] = Field(default_factory=list, description="basket ids the served data does not know")
    unknown_exclude: list[str] = Field(
        default_factory=list, description="ids of ``exclude`` the served data does not know (ignored)"
    )


class Prediction(BaseModel):
    user_id: str = Field(examples=["A2IBPI20UZIR0U"])
    item_id: str = Field(examples=["B0002E1G5C"])
    prediction: float = Field(examples=[4.42])
    fallback: Literal["item_bias", "user_bias", "global_mean"] | None = Field(
        None,
        description="how the prediction was made when the model could not use both the user and the item: "
        "item_bias (unknown user), user_bias (unknown item), global_mean (both unknown, or no "
        "similar item for the similarity heuristic)",
    )


class PredictionsPublic(BaseModel):
    data: list[Prediction]
    count: int


class Pair(BaseModel):
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    item_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class PredictRequest(BaseModel):
    """Up to 10,000 (user, item) pairs to predict."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"pairs": [{"user_id": "A2IBPI20UZIR0U", "item_id": "B0002E1G5C"}]}}
    )
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS)


class ItemPublic(BaseModel):
    item_id: str = Field(examples=["B0002E1G5C"])
    title: str | None = Field(None, examples=["Fender Medium Picks, 12 Pack"])
    reviews: int = Field(examples=[42])
    mean_rating: float = Field(examples=[4.6])


class ItemsPublic(BaseModel):
    """Items whose titles contain the words searched for."""

    q: str
    data: list[ItemPublic]
    count: int


class UserReview(BaseModel):
    item_id: str = Field(examples=["B0002E1G5C"])
    title: str | None = Field(None, examples=["Fender Medium Picks, 12 Pack"])
    rating: float = Field(examples=[5.0])
    date: str = Field(examples=["2014-07-23"], description="the review's date, YYYY-MM-DD (UTC)")


class UserPublic(BaseModel):
    """A reviewer of the served data: how many reviews, their mean rating and the newest few (newest first)."""

    user_id: str = Field(examples=["A2IBPI20UZIR0U"])
    reviews: int = Field(examples=[42])
    mean_rating: float = Field(examples=[4.5])
    recent: list[UserReview]


class UserSummary(BaseModel):
    user_id: str = Field(examples=["A2IBPI20UZIR0U"])
    reviews: int = Field(examples=[42])
    mean_rating: float = Field(examples=[4.5])


class TopPublic(BaseModel):
    """The most reviewed items and the reviewers with the most reviews in the served data, most first (ties by
    id)."""

    version: str
    items: list[ItemPublic]
    users: list[UserSummary]


class StatsPublic(BaseModel):
    """Statistics of the dataset behind the version the similarity service serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "version": "20240101T000000-abc123",
                "stats": {
                    "reviews": 10261,
                    "users": 1429,
                    "items": 900,
                    "mean_rating": 4.49,
                    "rating_histogram": {"1": 217, "2": 250, "3": 772, "4": 2084, "5": 6938},
                    "verified_fraction": 0.0,
                    "first_date": "2004-09-18",
                    "last_date": "2014-07-23",
                    "skipped_rows": 0,
                    "skipped_by_reason": {},
                },
            }
        }
    )
    version: str
    stats: dict[str, Any]


class DependencyStatus(BaseModel):
    status: str = Field(examples=["ready"])
    url: str | None = None
    version: str | None = None
    detail: str | None = None


class CacheStatus(BaseModel):
    backend: str | None = Field(None, examples=["redis"])
    status: str = Field(examples=["ok"])
    detail: str | None = None


class EventStoreStatus(BaseModel):
    status: str = Field(examples=["ok"], description="ok, down (event routes answer 503) or off (none configured)")
    backend: str | None = Field(None, examples=["postgresql"])
    detail: str | None = None


class ReadinessPublic(BaseModel):
    """200 when both services are ready; the cache and the event store are reported but never make the gateway
    unready (reads go on without them)."""

    status: str = Field(examples=["ready"])
    services: dict[str, DependencyStatus]
    cache: CacheStatus
    events: EventStoreStatus | None = None


class HealthPublic(BaseModel):
    status: str = Field(examples=["ok"])

"""The wire contract of ``POST /v1/reviews/score`` (the rating service's review scorer, behind the gateway): the
request and answer models, the text limits, and :data:`ReviewBody`, the dependency both services parse the
body with, so that a body that is not UTF-8, not JSON, or whose text is empty or too long is a 422 naming the
problem, worded as on every other route (FastAPI's own body parsing answers a non-UTF-8 body with a bare 400,
and pydantic's JSON parser words its errors otherwise). Handlers take the parsed body as
a :data:`ReviewBody` parameter and declare ``openapi_extra=SCORE_OPENAPI``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chorus.shared.contract.names import MAX_ID_LENGTH, NOT_BLANK
from chorus.shared.contract.params import utf8_text

#: Longest review text scored, in characters.
MAX_TEXT_CHARS = 20_000
#: The route, as the gateway and the rating service both serve it.
SCORE_PATH = "/v1/reviews/score"


class ReviewScoreRequest(BaseModel):
    """A review to score: its text, and optionally its star rating and the product it is about."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"text": "Great strings, bright tone, stayed in tune.", "rating": 5, "item_id": "B0002E1G5C"}
        }
    )
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        pattern=NOT_BLANK,
        description=f"The review's text (headline and body): 1 to {MAX_TEXT_CHARS:,} characters, not all white space",
    )
    rating: float | None = Field(
        None,
        ge=1,
        le=5,
        strict=True,  # a number, as the schema says: neither true nor "5"
        description="The review's star rating, 1 to 5, if known (the verified classifier uses it; reviews with "
        "text come from the Amazon formats, whose ratings are 1 to 5 stars)",
    )
    item_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID_LENGTH, description="The product reviewed; a known one adds its offset"
    )


class TermWeight(BaseModel):
    term: str = Field(examples=["great"])
    weight: float = Field(description="The term's signed contribution to the predicted rating", examples=[0.31])


class ReviewScorePublic(BaseModel):
    """What the text of a review predicts."""

    predicted_rating: float = Field(examples=[4.62])
    verified_probability: float | None = Field(
        description="Probability that the review is a verified purchase; null when the served data has no "
        "verified-purchase field",
        examples=[0.91],
    )
    top_terms: list[TermWeight] = Field(description="The terms that moved the predicted rating most")
    item_id: str | None = None
    item_known: bool | None = Field(None, description="Whether item_id is a known product (null when not given)")


async def _parse(request: Request) -> ReviewScoreRequest:
    """The body as UTF-8 JSON, then validated: each failure worded as FastAPI's own body parsing words it on the
    other routes (by the one handler), so a bad body reads the same on every route."""
    raw = await request.body()
    try:
        data = json.loads(utf8_text(raw))
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error]) from None
    try:
        return ReviewScoreRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


ReviewBody = Annotated[ReviewScoreRequest, Depends(_parse)]
"""The parsed request body of the score route (a handler parameter)."""

#: ``openapi_extra`` of the score route: the body's schema, as a ``body: ReviewScoreRequest`` parameter would give.
SCORE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReviewScoreRequest.model_json_schema()}},
    }
}

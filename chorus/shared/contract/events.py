"""The wire contract of the event routes of the gateway: ``POST /v1/events``, ``GET /v1/users/{id}/events`` and
``DELETE /v1/users/{id}``.

An event is what a user did to an item after the review dump (:mod:`chorus.shared.events.store`). The request
models check each event with the store's own rule (:func:`~chorus.shared.events.store.new_event`: the kinds, a
rating on ``rating`` and ``review`` and on no other kind, text only on a review), so the API refuses exactly what
the store would, with the event's position in the batch in the error's ``loc``.

Ratings: the gateway does not know the scale of the served data, so it accepts any finite number within
``±MAX_EVENT_RATING``; the rating service clips or validates a rating against the scale of the version it
serves. Timestamps: ISO-8601 (without an offset: UTC) or seconds since the epoch, between 1970 and 9999;
absent, the time the gateway received the batch.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import MAX_ID_LENGTH
from chorus.shared.events.store import KINDS, MAX_BATCH, MAX_TEXT_CHARS, RATED_KINDS, Event, NewEvent, new_event

MAX_EVENT_RATING = 1000.0
"""Largest magnitude of an event's rating the API accepts (the served version's scale is checked downstream)."""
LATEST_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The latest timestamp an event may carry (seconds since the epoch); the earliest is 0, 1970-01-01 UTC."""
MAX_SEQ = 2**63 - 1
"""Largest ``seq`` a store holds (a signed 64-bit integer, in SQLite and PostgreSQL alike)."""
DEFAULT_EVENTS_LIMIT = 100
"""Events per page of ``GET /v1/users/{id}/events`` without ``limit``."""
MAX_EVENTS_LIMIT = 1000
"""Most events one page holds."""

__all__ = [
    "DEFAULT_EVENTS_LIMIT",
    "EventIn",
    "EventPublic",
    "EventsBefore",
    "EventsLimit",
    "EventsPublic",
    "EventsRequest",
    "ForgottenPublic",
    "MAX_BATCH",
    "MAX_EVENTS_LIMIT",
    "MAX_EVENT_RATING",
    "StoredPublic",
    "parse_timestamp",
]


def parse_timestamp(value: Any) -> float:
    """Seconds since the epoch for a JSON timestamp: a number (epoch seconds) or an ISO-8601 string (UTC when it
    has no offset).

    Raises
    ------
    ValueError : not a number or a string, not ISO-8601, not finite, or outside 1970-01-01 to 9999-12-31 UTC.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("timestamp must be an ISO-8601 string or a number of seconds since the epoch")
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"timestamp {value!r} is not ISO-8601 (e.g. 2024-05-01T12:30:00Z) nor a number of seconds"
            ) from None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    else:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("timestamp must be a finite number of seconds since the epoch")
    if not 0 <= seconds <= LATEST_TIMESTAMP:
        raise ValueError(f"timestamp {value!r} is outside 1970-01-01 to 9999-12-31 (UTC)")
    return seconds


IdField = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


_EARLIEST_YEAR = r"^(19[7-9][0-9]|[2-9][0-9]{3})-"
"""A timestamp string's year, 1970 to 9999 (its offset may still move it out: then a 422)."""


def _event_schema(schema: dict[str, Any]) -> None:
    """The JSON schema of :class:`EventIn` with the store's rules that pydantic's fields do not say: one variant
    per kind (a rating where :data:`RATED_KINDS` need one and nowhere else, text only on a review), no ``/`` in a
    user id, a review's text length, and a timestamp's forms and range. The validators keep their own messages."""
    props = schema["properties"]
    props["user_id"]["pattern"] = "^[^/]*$"
    props["text"]["anyOf"] = [{"type": "string", "maxLength": MAX_TEXT_CHARS}, {"type": "null"}]
    props["timestamp"]["anyOf"] = [
        {"type": "number", "minimum": 0, "maximum": LATEST_TIMESTAMP},
        {"type": "string", "format": "date-time", "pattern": _EARLIEST_YEAR},
        {"type": "null"},
    ]
    none = {"type": "null"}
    rated = {"type": "number", "minimum": -MAX_EVENT_RATING, "maximum": MAX_EVENT_RATING}
    variants = []
    for kind in KINDS:
        fields: dict[str, Any] = {"kind": {"const": kind}, "rating": rated if kind in RATED_KINDS else none}
        if kind != "review":
            fields["text"] = none
        variants.append({"properties": fields, "required": ["kind", "rating"] if kind in RATED_KINDS else ["kind"]})
    schema["oneOf"] = variants
    schema["example"] = {
        "event_id": "e-1001",
        "user_id": "65272693",
        "item_id": "B001QBF855",
        "kind": "rating",
        "rating": 5,
    }


class EventIn(BaseModel):
    """One event: a user rated, bought, viewed or reviewed an item."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_event_schema)
    event_id: IdField | None = Field(
        None, description="Your id for this event: an id stored before is not stored again (safe retries)"
    )
    user_id: IdField = Field(description="Reviewer id; ids containing '/' are refused (no route could name them)")
    item_id: IdField = Field(description="Product id; items the served data does not know are accepted")
    kind: str = Field(json_schema_extra={"enum": list(KINDS)}, description="What the user did")
    rating: float | None = Field(
        None,
        ge=-MAX_EVENT_RATING,
        le=MAX_EVENT_RATING,
        allow_inf_nan=False,
        strict=True,  # a number, as the schema says: neither true nor "5"
        description=f"Star rating, required for {' and '.join(sorted(RATED_KINDS))} and refused on other kinds, "
        "on the scale of the served data (the rating service clips it to its version's scale)",
    )
    text: str | None = Field(None, description=f"A review's text, at most {MAX_TEXT_CHARS:,} characters")
    timestamp: float | str | None = Field(
        None,
        description="When: ISO-8601 (UTC without an offset) or seconds since the epoch; default: when received",
        examples=["2024-05-01T12:30:00Z"],
    )

    @field_validator("user_id")
    @classmethod
    def _nameable(cls, user_id: str) -> str:
        if "/" in user_id:
            raise ValueError("user ids containing '/' are not supported: no route could read or forget them")
        return user_id

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> float | None:
        return None if value is None else parse_timestamp(value)

    @model_validator(mode="after")
    def _store_rule(self) -> EventIn:
        try:
            self.to_new(0.0)
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None
        return self

    def to_new(self, now: float) -> NewEvent:
        """The event for the store; ``now`` (seconds since the epoch) stands in for a missing timestamp."""
        when = now if self.timestamp is None else float(self.timestamp)
        return new_event(self.user_id, self.item_id, self.kind, self.rating, self.text, when, self.event_id)


class EventsRequest(BaseModel):
    """A batch of 1 to 1,000 events, stored together."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "events": [
                    {
                        "event_id": "e-1001",
                        "user_id": "65272693",
                        "item_id": "B001QBF855",
                        "kind": "rating",
                        "rating": 5,
                    },
                    {"user_id": "65272693", "item_id": "B000BXWOG7", "kind": "purchase"},
                ]
            }
        },
    )
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH:,} events")


class StoredPublic(BaseModel):
    """What a batch did, once it is durable: events stored, and events whose ``event_id`` was stored before."""

    stored: int = Field(examples=[2])
    duplicates: int = Field(examples=[0])


class EventPublic(BaseModel):
    seq: int = Field(description="The event's place in the store's order (the cursor of the pages)", examples=[42])
    event_id: str = Field(examples=["e-1001"])
    user_id: str = Field(examples=["65272693"])
    item_id: str = Field(examples=["B001QBF855"])
    kind: str = Field(examples=["rating"])
    rating: float | None = Field(None, examples=[5.0])
    text: str | None = None
    timestamp: float = Field(description="Seconds since the epoch (UTC)", examples=[1714566600.0])

    @classmethod
    def of(cls, event: Event) -> EventPublic:
        return cls.model_validate(event.to_dict())


class EventsPublic(BaseModel):
    """A page of a user's events, newest first; ``next`` is the ``before`` of the next page (null: no more)."""

    user_id: str
    data: list[EventPublic]
    count: int
    next: int | None = Field(None, description="Pass as before= to read the next (older) page; null at the end")


class ForgottenPublic(BaseModel):
    """A forgotten user: their events deleted, their reviews of the dump left out of every later version."""

    user_id: str = Field(examples=["65272693"])
    deleted: int = Field(description="Events deleted", examples=[3])


EventsLimit = Annotated[
    int, Query(ge=1, le=MAX_EVENTS_LIMIT, description=f"Events per page (1 to {MAX_EVENTS_LIMIT:,})")
]
EventsBefore = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_SEQ,
        description="Only events older than this seq: the `next` of the previous page (absent: the newest)",
    ),
]

"""The event routes: ``POST /v1/events``, ``GET /v1/users/{id}/events`` and ``DELETE /v1/users/{id}``.

Each needs an API key (:mod:`.keys`) and an event store (``CHORUS_EVENTS_URL``, :mod:`.events`). Reads and
forgets block, so they run on worker threads; posted events go to the store's writer, which commits the batches
posted at the same time together (group commit), and the handler waits for its own answer without a thread. A
write is answered only once its transaction committed (durable: see :mod:`chorus.shared.events.store`), and
changes the sequence numbers that key the cached answers about the user, so the next read reflects it
(:mod:`.events`). None of these answers is cached.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from chorus.services.gateway.deps import KeyedEventsDep
from chorus.services.gateway.keys import MissingKey
from chorus.shared.contract.errors import EventsUnavailable, Forbidden, InvalidInput
from chorus.shared.contract.events import (
    DEFAULT_EVENTS_LIMIT,
    EventPublic,
    EventsBefore,
    EventsLimit,
    EventsPublic,
    EventsRequest,
    ForgottenPublic,
    StoredPublic,
)
from chorus.shared.contract.params import UserId, error_responses
from chorus.shared.http.limits import OffLoopRoute
from chorus.shared.http.metrics import EVENTS_RECEIVED, USERS_FORGOTTEN

ERRORS = error_responses(
    InvalidInput,
    MissingKey,
    Forbidden,
    EventsUnavailable,
    s401="No API key (send Authorization: Bearer <key>)",
    s403="An API key that is none of CHORUS_API_KEYS",
    s503="No event store is configured (CHORUS_EVENTS_URL), none can be reached, or no API key is configured "
    "(CHORUS_API_KEYS)",
)
PRIVATE = {"cache-control": "no-store"}  # personal data: no shared cache keeps it

_STORED = EVENTS_RECEIVED.labels("stored")
_DUPLICATES = EVENTS_RECEIVED.labels("duplicate")
router = APIRouter(prefix="/v1", tags=["events"], responses=ERRORS, route_class=OffLoopRoute)


@router.post("/events", response_model=StoredPublic)
async def post_events(events: KeyedEventsDep, body: EventsRequest) -> Response:
    """Store 1 to 1,000 events (ratings, purchases, views, reviews) and answer once they are durable; an
    ``event_id`` stored before is not stored again (``duplicates``), so retrying a batch is safe. Unknown users
    and items are accepted. The next request for the user's recommendations reflects these events."""
    now = time.time()
    batch = [event.to_new(now) for event in body.events]
    done = await events.append(batch)
    _STORED.inc(done.stored)
    _DUPLICATES.inc(done.duplicates)
    answer = StoredPublic(stored=done.stored, duplicates=done.duplicates)
    # encoded here by pydantic: FastAPI's response_model path would validate it again and encode it in Python
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/users/{user_id}/events", response_model=EventsPublic)
async def user_events(
    events: KeyedEventsDep,
    response: Response,
    user_id: UserId,
    limit: EventsLimit = DEFAULT_EVENTS_LIMIT,
    before: EventsBefore = None,
) -> EventsPublic:
    """A user's events, newest first, ``limit`` per page; pass the answer's ``next`` as ``before`` for the
    next page. An unknown or forgotten user has none (an empty list, not 404)."""
    found = await events.call(lambda store: store.page(user_id, limit + 1, before))
    response.headers.update(PRIVATE)
    page = found[:limit]
    next_before = page[-1].seq if len(found) > limit else None
    return EventsPublic(user_id=user_id, data=[EventPublic.of(e) for e in page], count=len(page), next=next_before)


@router.delete("/users/{user_id}", response_model=ForgottenPublic)
async def forget_user(events: KeyedEventsDep, user_id: UserId) -> ForgottenPublic:
    """Forget a user: delete their events, and keep their reviews of the dump out of every later version.
    Answers stop using their history at once (they become an unknown user). Forgetting twice is harmless."""
    deleted = await events.call(lambda store: store.forget(user_id, time.time()), "the user was forgotten")
    USERS_FORGOTTEN.inc()
    return ForgottenPublic(user_id=user_id, deleted=deleted)

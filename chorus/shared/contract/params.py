"""The wire contract's parameters and error responses, as FastAPI declares them, for every service and the gateway.

One definition of each path and query parameter (its bounds come from :mod:`chorus.shared.contract.names`), so a
request the gateway accepts is one the service behind it accepts, and one table of documented error answers:
:func:`error_responses` lists, per route, the :class:`~chorus.shared.contract.errors.ChorusError` types it can
answer with, each documented by a model whose ``type`` is that error's own (as Polar documents its errors).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field, StringConstraints, create_model

from chorus.shared.contract.errors import ChorusError
from chorus.shared.contract.kinds import ranker_methods
from chorus.shared.contract.names import (
    DEFAULT_K,
    DEFAULT_MIN_COMMON,
    DEFAULT_SEARCH_LIMIT,
    MAX_ID_LENGTH,
    MAX_K,
    MAX_MIN_COMMON,
    MAX_SEARCH_LENGTH,
    MAX_SEARCH_LIMIT,
    NOT_BLANK,
    Method,
    RatingMethod,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MIN_COMMON",
    "DEFAULT_SEARCH_LIMIT",
    "ExcludeIds",
    "K",
    "ItemId",
    "ItemIdQuery",
    "MethodQuery",
    "MinCommon",
    "RatingMethodQuery",
    "SearchLimit",
    "SearchText",
    "UserId",
    "UserIdQuery",
    "error_model",
    "error_responses",
    "summary",
    "union_of",
    "utf8_text",
]

ItemId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="Product id, e.g. an ASIN", examples=["B001QBF855"])
]
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="Reviewer id", examples=["65272693"])]
ItemIdQuery = Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH, description="Product id, e.g. an ASIN")]
UserIdQuery = Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH, description="Reviewer id")]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many results (1 to {MAX_K})")]
MinCommon = Annotated[
    int,
    Query(ge=1, le=MAX_MIN_COMMON, description="Candidates share at least this many users (or items) with the query"),
]
SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_SEARCH_LENGTH,
        pattern=NOT_BLANK,
        description="Words of a title, or an item id (at least one character other than white space)",
    ),
]
SearchLimit = Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT, description="How many items (1 to 100)")]
ExcludeIds = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]] | None,
    Query(
        max_length=MAX_K,
        description=f"Item ids never to return; repeat the parameter for several (at most {MAX_K}). Ids the served "
        "data does not know are ignored and listed in `unknown_exclude`.",
    ),
]
_METHOD_TEXT = (
    f"{', '.join(ranker_methods())}: a ranker of the served version; latent: the highest predicted ratings "
    "(`model` is its old name)"
)
_DEFAULT_TEXT = "Default: the served version's default ranker (latent for a version without rankers)."
MethodQuery = Annotated[
    Method | None,
    Query(
        description=f"{_METHOD_TEXT}; similar: because you liked similar items (similarity service). {_DEFAULT_TEXT}"
    ),
]
RatingMethodQuery = Annotated[RatingMethod | None, Query(description=f"{_METHOD_TEXT}. {_DEFAULT_TEXT}")]


def utf8_text(body: bytes) -> str:
    """The body as text: JSON between systems is UTF-8 (RFC 8259, section 8.1).

    ``json.loads`` on bytes would guess UTF-16 or UTF-32 from a NUL byte among the first four and fail with a
    UnicodeDecodeError, which FastAPI answers with a bare 400; a JSONDecodeError is answered 422 with its reason.

    Raises
    ------
    json.JSONDecodeError : at the first byte that is not UTF-8.
    """
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = len(body[: exc.start].decode("utf-8"))  # in characters, as the JSON parser counts
        raise json.JSONDecodeError(
            f"not valid UTF-8: byte 0x{body[exc.start]:02x}", body.decode("latin-1"), at
        ) from None


_MODELS: dict[str, type[BaseModel]] = {}


def error_model(error: type[ChorusError]) -> type[BaseModel]:
    """The OpenAPI model of one error type: ``{"type": <its type>, "detail": str}`` (one model per type)."""
    if error.type not in _MODELS:
        _MODELS[error.type] = _build_error_model(error)
    return _MODELS[error.type]


def _build_error_model(error: type[ChorusError]) -> type[BaseModel]:
    return create_model(
        error.__name__ + "Public",
        __doc__=(error.__doc__ or "").strip(),
        type=(Literal[error.type], Field(examples=[error.type])),  # type: ignore[arg-type]
        detail=(str, Field(description="What went wrong, in words a user can act on")),
    )


def error_responses(*errors: type[ChorusError], **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status its ``errors`` can answer with, documented by their
    models (a union where several types share a status). ``descriptions`` override the text per status, keyed
    ``s404`` and so on."""
    by_status: dict[int, list[type[ChorusError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    out: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        models = [error_model(e) for e in group]
        model: Any = models[0] if len(models) == 1 else union_of(*models)
        text = descriptions.get(f"s{status}") or "; ".join(summary(e) for e in group)
        out[status] = {"model": model, "description": text}
    return out


def summary(error: type[ChorusError]) -> str:
    """The first sentence of the error's docstring, without the status it names."""
    first = (error.__doc__ or error.type).strip().split("\n")[0].rstrip(".")
    return first.split(" (HTTP ")[0]


def union_of(*models: Any) -> Any:
    """The union of response models (each a model or a union already), for a status several errors share."""
    from typing import Union

    return Union[models]  # noqa: UP007 - built at run time from a tuple

"""The plain parts of the wire contract, shared by the cores, the services, the gateway and the CLI.

Nothing here imports a web framework or pydantic, so a numerical core can use the same names the API documents:
the similarity measures and recommendation methods, the bounds on ids and result sizes, the response headers,
and the one function that hides a password in a URL before it is logged or shown.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class Measure(StrEnum):
    """A similarity measure (defined in ``docs/models.md``; computed in ``chorus.services.similarity.measures``)."""

    jaccard = "jaccard"
    cosine = "cosine"
    pearson = "pearson"


class Method(StrEnum):
    """How ``/v1/users/{id}/recommendations`` ranks: by the rating model, or by similarity to liked items."""

    model = "model"
    similar = "similar"


MAX_ID_LENGTH = 200
"""Longest user or item id the API accepts (characters)."""
MAX_K = 500
"""Most results one list query returns."""
MAX_MIN_COMMON = 1_000_000
"""Largest ``min_common`` (least number of co-raters) a similarity query accepts."""
MAX_SEARCH_LENGTH = 200
"""Longest title search (characters)."""
MAX_SEARCH_LIMIT = 100
"""Most items one title search returns."""
MAX_PAIRS = 10_000
"""Most (user, item) pairs in one batch prediction."""

DEFAULT_K = 10
DEFAULT_MIN_COMMON = 1
DEFAULT_MEASURE = Measure.jaccard
DEFAULT_METHOD = Method.model
DEFAULT_SEARCH_LIMIT = 20

VERSION_HEADER = "X-Model-Version"
"""Response header naming the artifact version that produced an answer."""
CACHE_HEADER = "X-Cache"
"""Gateway response header: ``hit``, ``miss`` or ``bypass``."""

_SECRET_PARAMS = frozenset({"password", "pass", "pwd", "secret", "token"})


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and status pages.

    Covers the ``user:password@host`` form and a ``password=`` (or ``token=``, ...) query parameter.

    >>> redact_url("redis://user:s3cret@cache:6379/0?password=x")
    'redis://user:***@cache:6379/0?password=***'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, _ = userinfo.partition(":")
        # without a colon the userinfo is the password (redis://secret@host)
        netloc = f"{user}:***@{host}" if sep else f"***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))

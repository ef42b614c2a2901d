"""The plain parts of the wire contract, shared by the cores, the services, the gateway and the CLI.

Nothing here imports a web framework or pydantic, so a numerical core can use the same names the API documents:
the similarity measures and recommendation methods, the bounds on ids and result sizes, the response headers,
and the one function that hides a password in a URL before it is logged or shown.
"""

from __future__ import annotations

from enum import Enum, EnumMeta, StrEnum
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.kinds import ranker_methods


class Measure(StrEnum):
    """A similarity measure (defined in ``docs/models.md``; computed in ``chorus.services.similarity.measures``)."""

    jaccard = "jaccard"
    cosine = "cosine"
    pearson = "pearson"


# Ranking and Method have a member per served ranker of the spec table (kinds.ranker_methods()), made at import by
# _after_rankers, ahead of the members written here. The type checker sees only the written ones, so code names a
# ranker member by its value (Method("ease")), never as an attribute.


class Ranking(StrEnum):
    """A top-N ranker on implicit feedback, as the rating service's ``ranking`` component records its kind
    (``chorus.services.rating.rankers``; formulas in ``docs/models.md``)."""


class Method(StrEnum):
    """How ``/v1/users/{id}/recommendations`` ranks: a :class:`Ranking`, ``latent`` (the highest predicted
    ratings of the rating model), or ``similar`` ("because you liked", the similarity service).

    ``model`` is the old name of ``latent`` and means the same (:data:`METHOD_ALIASES`). Without a method the
    rating service answers with the default ranker of the version it serves (``latent`` for a version without
    rankers).
    """

    latent = "latent"
    similar = "similar"
    model = "model"


class RatingMethod(StrEnum):
    """The methods of :class:`Method` the rating service answers: every one but ``similar``."""

    latent = "latent"
    model = "model"


def _after_rankers(enum: type[StrEnum]) -> type[Enum]:
    """``enum`` made again with a member per served ranker (:func:`~chorus.shared.contract.kinds.ranker_methods`)
    ahead of its own members, under the same name, docstring and module.

    Raises
    ------
    ValueError : a ranker named like one of ``enum``'s members.
    """
    rankers = ranker_methods()
    clash = sorted(set(rankers) & {m.value for m in enum})
    if clash:
        raise ValueError(f"ranker kind {clash[0]!r} is already a {enum.__name__} of another meaning")
    members = [(kind, kind) for kind in rankers] + [(m.name, m.value) for m in enum]
    # the functional API, called through the metaclass: the type checker refuses computed members in StrEnum(...)
    made = EnumMeta.__call__(StrEnum, enum.__name__, members, module=enum.__module__, qualname=enum.__qualname__)
    made.__doc__ = enum.__doc__
    return made


if not TYPE_CHECKING:
    Ranking = _after_rankers(Ranking)
    Method = _after_rankers(Method)
    RatingMethod = _after_rankers(RatingMethod)


METHOD_ALIASES = {Method.model: Method.latent}
"""Old method names and the method each means."""


def canonical_method(method: str) -> Method:
    """The method that answers for ``method`` (a :class:`Method` or :class:`RatingMethod`, or its value; an alias
    resolved)."""
    return METHOD_ALIASES.get(Method(method), Method(method))


MAX_ID_LENGTH = 256
"""Longest user or item id: the API accepts ids of up to this many characters and the loaders keep ids of up to this
many bytes of UTF-8 (longer ones are skipped as ``id_too_long``), so every id a version holds can be queried."""
MAX_K = 500
"""Most results one list query returns."""


def check_k(k: int, name: str = "k") -> int:
    """``k`` (how many results) as an int of at least 1, the one check every list and metric applies.

    The API bounds ``k`` by :data:`MAX_K` in its parameters; offline code (evaluation, the neighbour table) may ask
    for more.

    Raises
    ------
    InvalidInput : ``k`` below 1, named as ``name``.
    """
    if int(k) < 1:
        raise InvalidInput(f"{name} must be at least 1, got {k}")
    return int(k)


MAX_MIN_COMMON = 1_000_000
"""Largest ``min_common`` (least number of co-raters) a similarity query accepts."""
MAX_SEARCH_LENGTH = 200
"""Longest title search (characters)."""
MAX_SEARCH_LIMIT = 100
"""Most items one title search returns."""
NOT_BLANK = r"[^\s\x00\x1c-\x1f\x85]"
"""The pattern of a text parameter that must hold a word: a character other than white space (as ``str.split``
sees it) and NUL, written so that Python's, Rust's and JavaScript's regular expressions agree on it."""
MAX_PAIRS = 10_000
"""Most (user, item) pairs in one batch prediction, and most items in one basket."""

DEFAULT_K = 10
DEFAULT_MIN_COMMON = 1
DEFAULT_MEASURE = Measure.jaccard
DEFAULT_SEARCH_LIMIT = 20

VERSION_HEADER = "X-Model-Version"
"""Response header naming the artifact version that produced an answer."""
CACHE_HEADER = "X-Cache"
"""Gateway response header: ``hit``, ``miss`` or ``bypass``."""

_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token", "auth", "access_token"})


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and status pages.

    Covers the ``user:password@host`` form (the userinfo runs to the last ``@`` before the query, so a password
    holding ``/``, ``#`` or ``@`` is hidden whole) and a ``password=`` (or ``token=``, ...) query parameter.

    >>> redact_url("redis://user:s3cret@cache:6379/0?password=x")
    'redis://user:***@cache:6379/0?password=***'
    >>> redact_url("redis://:a/b#c@cache:6379")
    'redis://:***@cache:6379'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    location, question, query = rest.partition("?")
    if "@" in location:
        userinfo, host = location.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        # without a colon the userinfo is the password (redis://secret@host)
        location = f"{user}:***@{host}" if colon else f"***@{host}"
    if query:
        query, hash_, fragment = query.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
        query += hash_ + fragment
    return f"{scheme}{sep}{location}{question}{query}"

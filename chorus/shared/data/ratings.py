"""The in-memory ratings table: columnar numpy arrays plus the id vocabularies.

Every loader in :mod:`chorus.shared.data.loaders` produces raw columns chunk by chunk and hands them to
:func:`assemble`, which maps raw string ids to dense integer indices once (``np.unique``: the vocabularies
are sorted, so index order is raw-id order), applies the duplicate rule and attaches the load report.

Duplicate rule: when the same (user, item) pair appears more than once, the review with the latest timestamp
is kept; among equal timestamps the one later in the file wins. Every dropped duplicate is counted under
``duplicate_pair`` in the report, like any other skipped row.

Titles longer than :data:`MAX_TITLE_LENGTH` characters are cut to it and counted (``titles_truncated``); they are
held in a variable-width string array (numpy's ``StringDType``), so one long title does not widen every entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

MAX_EXAMPLES = 5
MAX_TITLE_LENGTH = 512
"""Titles are cut to this many characters (and counted in ``LoadReport.titles_truncated``)."""


def text_array(values: list[str]) -> np.ndarray:
    """``values`` as a variable-width string array (``StringDType``: each string takes its own length)."""
    return np.array(values, dtype=np.dtypes.StringDType())


@dataclass(frozen=True)
class RatingScale:
    """Valid ratings are ``low, low + step, ..., high``."""

    low: float
    high: float
    step: float

    def valid(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of finite values on the scale's grid. ``values``: float64 (n,)."""
        with np.errstate(invalid="ignore"):
            steps = (values - self.low) / self.step
            on_grid = np.abs(steps - np.round(steps)) < 1e-6
            mask: NDArray[np.bool_] = (
                np.isfinite(values) & (values >= self.low - 1e-9) & (values <= self.high + 1e-9) & on_grid
            )
            return mask

    def clip(self, values: np.ndarray) -> np.ndarray:
        clipped: NDArray[Any] = np.clip(values, self.low, self.high)
        return clipped

    def points(self) -> np.ndarray:
        return np.arange(self.low, self.high + self.step / 2, self.step)


@dataclass
class LoadReport:
    """What a load read and what it skipped, by reason, with the first few bad rows and their line numbers."""

    path: str
    format: str
    rows_read: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    titles_truncated: int = 0

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped_by_reason.values())

    def skip(self, line: int, reason: str, text: str) -> None:
        self.skipped_by_reason[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((line, reason, text[:120]))

    def skip_many(self, lines: np.ndarray, reason: str, texts: Callable[[int], str]) -> None:
        """Count ``len(lines)`` rows skipped for ``reason``; ``texts(k)`` gives the k-th row's text lazily."""
        if len(lines) == 0:
            return
        self.skipped_by_reason[reason] += int(len(lines))
        for k in range(min(len(lines), MAX_EXAMPLES - len(self.examples))):
            self.examples.append((int(lines[k]), reason, texts(k)[:120]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "rows_read": self.rows_read,
            "skipped_rows": self.skipped_rows,
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "titles_truncated": self.titles_truncated,
            "examples": [{"line": ln, "reason": r, "text": t} for ln, r, t in self.examples],
        }


@dataclass
class Ratings:
    """A ratings dataset in columnar form.

    Attributes
    ----------
    user, item : int32 (n,)
        Dense indices into ``user_ids`` / ``item_ids``.
    rating : float32 (n,)
    timestamp : int64 (n,)
        Unix seconds (UTC).
    user_ids, item_ids : str arrays (n_users,), (n_items,)
        Raw ids, sorted, so index order equals raw-id order.
    titles : StringDType array (n_items,)
        Item titles, ``""`` where the format or file has none, at most :data:`MAX_TITLE_LENGTH` characters.
    verified : bool (n,) or None
        Verified purchase, where the format has it.
    helpful_votes, total_votes : int32 (n,) or None
    text : object (n,) or None
        Review text (headline and body joined by a newline), only when loaded ``with_text=True`` (and within
        ``text_max_rows``: :func:`chorus.shared.data.loaders.load_ratings`).
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: np.ndarray
    scale: RatingScale
    report: LoadReport
    verified: np.ndarray | None = None
    helpful_votes: np.ndarray | None = None
    total_votes: np.ndarray | None = None
    text: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.user.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])


ExtraChunk: TypeAlias = NDArray[Any] | list[object]
"""One chunk of an optional column: an array from a vectorised reader, or the parsed values of a Python one."""


@dataclass
class RawColumns:
    """Valid rows of one load, as gathered by a parser, before ids are mapped."""

    lines: list[NDArray[np.int64]] = field(default_factory=list)  # 1-based line numbers, one array per chunk
    user_codes: dict[str, int] = field(default_factory=dict)  # raw id -> code (order of first appearance)
    item_codes: dict[str, int] = field(default_factory=dict)
    users: list[NDArray[np.int64]] = field(default_factory=list)  # code arrays, one per chunk
    items: list[NDArray[np.int64]] = field(default_factory=list)
    ratings: list[NDArray[np.float64]] = field(default_factory=list)
    timestamps: list[NDArray[np.int64]] = field(default_factory=list)
    title_by_code: dict[int, str] | None = None  # item code -> title of its latest row, when reviews carry titles
    # the optional columns, one array (or list of parsed values) per chunk: bool, int, int, str
    verified: list[ExtraChunk] | None = None
    helpful: list[ExtraChunk] | None = None
    total: list[ExtraChunk] | None = None
    text: list[ExtraChunk] | None = None


def _concat(chunks: Sequence[ExtraChunk], dtype: npt.DTypeLike) -> np.ndarray:
    if not chunks:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([np.asarray(c, dtype=dtype) for c in chunks])


def _sorted_vocabulary(codes: dict[str, int], row_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vocabulary of the ids that accepted rows use, sorted; each row's index into it (int32); and the index
    of every code (-1 for codes no accepted row uses)."""
    raw = np.array(list(codes), dtype=str) if codes else np.zeros(0, dtype="<U1")
    used = np.zeros(len(codes), dtype=bool)
    used[row_codes] = True
    used_codes = np.flatnonzero(used)
    order = np.argsort(raw[used_codes], kind="stable")
    vocab = raw[used_codes][order]
    index_of_code = np.full(len(codes), -1, dtype=np.int64)
    index_of_code[used_codes[order]] = np.arange(order.size)
    return vocab, index_of_code[row_codes].astype(np.int32), index_of_code


def assemble(
    cols: RawColumns,
    scale: RatingScale,
    report: LoadReport,
    title_by_item: dict[str, str] | None = None,
) -> Ratings:
    """Map raw ids to indices, drop older duplicates, and build a :class:`Ratings`.

    ``title_by_item`` supplies titles from a side file (MovieLens); otherwise per-row titles are used, the
    latest row's title winning.
    """
    user_ids, user, _ = _sorted_vocabulary(cols.user_codes, _concat(cols.users, np.int64))
    item_ids, item, item_index_of_code = _sorted_vocabulary(cols.item_codes, _concat(cols.items, np.int64))
    rating = _concat(cols.ratings, np.float64).astype(np.float32)
    timestamp = _concat(cols.timestamps, np.int64)
    verified = None if cols.verified is None else _concat(cols.verified, bool)
    helpful = None if cols.helpful is None else _concat(cols.helpful, np.int64)
    total = None if cols.total is None else _concat(cols.total, np.int64)
    text = None if cols.text is None else np.array([t for chunk in cols.text for t in chunk], dtype=object)

    n = user.shape[0]
    order = np.arange(n)
    key = user.astype(np.int64) * max(1, item_ids.shape[0]) + item
    # Sort by pair, then time, then file position; the last row of each pair group is the one kept.
    srt = np.lexsort((order, timestamp, key))
    last_of_group = np.ones(n, dtype=bool)
    last_of_group[:-1] = key[srt][1:] != key[srt][:-1]
    keep = np.sort(srt[last_of_group])
    dropped = np.setdiff1d(order, keep, assume_unique=True)
    if dropped.size:
        lines = _concat(cols.lines, np.int64)
        report.skip_many(
            lines[dropped],
            "duplicate_pair",
            lambda k: (
                f"user {user_ids[user[dropped[k]]]} item {item_ids[item[dropped[k]]]}: a newer review "
                "of the same pair is kept"
            ),
        )

    titles = np.full(item_ids.shape[0], "", dtype=object)
    if title_by_item is not None:
        titles = np.array([title_by_item.get(i, "") for i in item_ids.tolist()], dtype=object)
    elif cols.title_by_code:
        codes = np.array(list(cols.title_by_code), dtype=np.int64)
        index = item_index_of_code[codes]
        present = index >= 0
        titles[index[present]] = [t for t, p in zip(cols.title_by_code.values(), present.tolist(), strict=True) if p]
    long = [k for k, t in enumerate(titles.tolist()) if len(t) > MAX_TITLE_LENGTH]
    for k in long:
        titles[k] = titles[k][:MAX_TITLE_LENGTH]
    report.titles_truncated = len(long)
    titles = text_array(titles.tolist())

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    return Ratings(
        user=user[keep],
        item=item[keep],
        rating=rating[keep],
        timestamp=timestamp[keep],
        user_ids=user_ids.astype(str),
        item_ids=item_ids.astype(str),
        titles=titles,
        scale=scale,
        report=report,
        verified=pick(verified),
        helpful_votes=None if helpful is None else helpful[keep].astype(np.int32),
        total_votes=None if total is None else total[keep].astype(np.int32),
        text=pick(text),
    )

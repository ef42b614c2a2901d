"""What every review-dump reader shares: the Amazon TSV header, the byte limits, the raw byte stream of a
(possibly gzip) file, vectorised number parsing, and :class:`ChunkFilter`, which applies the row checks and
counts every skipped row by reason."""

from __future__ import annotations

import contextlib
import gzip
import io
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from chorus.shared.data.ratings import LoadReport, RatingScale, RawColumns


class Texts(Protocol):
    """The text of row ``k`` of a chunk, by index (a list of lines, or a lazy view of a byte block)."""

    def __getitem__(self, k: int, /) -> str: ...


TSV_HEADER = (
    "marketplace customer_id review_id product_id product_parent product_title product_category star_rating "
    "helpful_votes total_votes vine verified_purchase review_headline review_body review_date"
).split()

CHUNK_BYTES = 8 << 20
TRUE_WORDS = ("true", "y", "yes", "1")
#: User or item ids longer than this many bytes (UTF-8) are skipped as ``id_too_long`` (real ids are a few
#: dozen characters at most; one huge id would otherwise widen every entry of the vocabulary array).
MAX_ID_LENGTH = 256


@contextlib.contextmanager
def raw_stream(path: Path) -> Iterator[tuple[io.BufferedIOBase, Callable[[], int]]]:
    """Binary stream of the (decompressed) content and a function giving the position in the file on disk."""
    with open(path, "rb") as raw:
        if raw.peek(2)[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz, raw.tell
        else:
            yield raw, raw.tell


def floats(values: Sequence[str | int | float]) -> np.ndarray:
    """float64 array, NaN where a value is not a number."""
    try:
        return np.array(values, dtype=np.float64)
    except (ValueError, TypeError):
        out = np.empty(len(values), dtype=np.float64)
        for k, v in enumerate(values):
            try:
                out[k] = float(v)
            except (ValueError, TypeError):
                out[k] = np.nan
        return out


def ints(values: Sequence[str | int | float]) -> tuple[np.ndarray, np.ndarray]:
    """(int64 array, ok mask); a value that is not an integer gives ok=False."""
    try:
        return np.array(values, dtype=np.int64), np.ones(len(values), dtype=bool)
    except (ValueError, TypeError, OverflowError):
        out = np.zeros(len(values), dtype=np.int64)
        ok = np.ones(len(values), dtype=bool)
        for k, v in enumerate(values):
            try:
                out[k] = int(v)
            except (ValueError, TypeError, OverflowError):
                ok[k] = False
        return out, ok


class ChunkFilter:
    """Applies the shared checks to one chunk's candidate rows and appends the accepted ones."""

    def __init__(self, cols: RawColumns, report: LoadReport, scale: RatingScale) -> None:
        self.cols, self.report, self.scale = cols, report, scale
        # raw id -> code in order of first appearance; assemble() turns codes into sorted-vocabulary indices
        self.user_codes: dict[str, int] = cols.user_codes
        self.item_codes: dict[str, int] = cols.item_codes

    @staticmethod
    def _long(ids: list[str] | np.ndarray) -> np.ndarray:
        """Ids longer than MAX_ID_LENGTH bytes of UTF-8 (encoded only when they could be)."""
        if isinstance(ids, np.ndarray):  # the TSV reader drops over-long ids before cutting fixed-width fields
            return np.zeros(ids.shape[0], dtype=bool)
        quarter = MAX_ID_LENGTH // 4  # a UTF-8 character takes at most 4 bytes
        return np.array([len(x) > quarter and len(x.encode()) > MAX_ID_LENGTH for x in ids], dtype=bool)

    @staticmethod
    def _codes(ids: list[str] | np.ndarray, codes: dict[str, int]) -> np.ndarray:
        # New ids get the next codes (a loop over distinct ids only); the per-row lookup runs in C.
        if isinstance(ids, np.ndarray):  # fixed-width UTF-8 bytes from the vectorised TSV reader
            uniq, inverse = np.unique(ids, return_inverse=True)
            setdefault = codes.setdefault
            mapped = np.array(
                [setdefault(x.decode("utf-8", "replace"), len(codes)) for x in uniq.tolist()], dtype=np.int64
            )
            return mapped[inverse.ravel()]
        for x in dict.fromkeys(ids):
            if x not in codes:
                codes[x] = len(codes)
        if len(ids) == 1:
            return np.array([codes[ids[0]]], dtype=np.int64)
        return np.array(operator.itemgetter(*ids)(codes) if ids else (), dtype=np.int64)

    def reject(self, lines: np.ndarray, texts: Texts, bad: np.ndarray, reason: str) -> np.ndarray:
        """Record rows where ``bad`` and return the mask of rows still alive (``~bad``)."""
        idx = np.flatnonzero(bad)
        self.report.skip_many(lines[idx], reason, lambda k: texts[idx[k]].rstrip("\r"))
        return ~bad

    def accept(
        self,
        lines: np.ndarray,
        texts: Texts,
        users: list[str] | np.ndarray,
        items: list[str] | np.ndarray,
        rating: np.ndarray,
        ts: np.ndarray,
        ts_ok: np.ndarray,
        extras: Mapping[str, tuple[Sequence[object] | np.ndarray, np.ndarray | None]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Check and keep rows; ``extras`` maps a column name to (values, ok mask or None).

        ``texts[k]`` is the text of row k (for skip examples). Returns the kept row positions and the item
        codes of all rows."""
        too_long = self._long(users) | self._long(items)
        if too_long.any():  # never let an over-long id into the vocabulary, whose width is the longest id's
            keep_id = ~too_long
            users = [x if ok else "" for x, ok in zip(users, keep_id.tolist(), strict=True)]
            items = [x if ok else "" for x, ok in zip(items, keep_id.tolist(), strict=True)]
        u = self._codes(users, self.user_codes)
        i = self._codes(items, self.item_codes)
        alive = np.ones(len(users), dtype=bool)
        checks = [
            (too_long, "id_too_long"),
            (u == self.user_codes.get("", -1), "empty_user_id"),
            (i == self.item_codes.get("", -1), "empty_item_id"),
            (~np.isfinite(rating), "bad_rating"),
            (np.isfinite(rating) & ~self.scale.valid(rating), "rating_out_of_scale"),
            (~ts_ok, "bad_timestamp"),
        ]
        for name, (_, ok) in (extras or {}).items():
            if ok is not None:
                checks.append((~ok, f"bad_{name}" if name != "helpful" else "bad_votes"))
        for bad, reason in checks:
            alive &= self.reject(lines, texts, bad & alive, reason)
        keep = np.flatnonzero(alive)
        cols = self.cols
        cols.lines.append(lines[keep])
        cols.users.append(u[keep])
        cols.items.append(i[keep])
        cols.ratings.append(rating[keep])
        cols.timestamps.append(ts[keep])
        for name, (values, _) in (extras or {}).items():
            target = getattr(cols, name)
            if isinstance(values, np.ndarray):
                target.append(values[keep])
            else:
                target.append([values[k] for k in keep.tolist()])
        return keep, i

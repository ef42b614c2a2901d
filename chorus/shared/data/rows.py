"""What every review-dump reader shares: the Amazon TSV header, the byte limits, the raw byte stream of a
(possibly gzip) file and its blocks of whole lines (:func:`line_blocks`), vectorised number parsing, and
:class:`ChunkFilter`, which applies the row checks and counts every skipped row by reason.

Memory is bounded by the read block, never by the longest line: a line longer than ``max_line`` bytes is
skipped (counted as ``line_too_long``) while it streams past, without ever being held whole; a line that spans
blocks is gathered in pieces and joined once (joining the carried part to every new block, as a naive reader
does, copies it again for every block: quadratic in the line's length). A gzip stream that inflates to more than
``max_ratio`` times the compressed bytes read so far is stopped (:class:`DecompressionGuard`).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from chorus.shared.contract.errors import DataError
from chorus.shared.contract.names import MAX_ID_LENGTH
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
# User or item ids longer than MAX_ID_LENGTH bytes (UTF-8) are skipped as ``id_too_long`` (real ids are a few dozen
# characters at most; one huge id would otherwise widen every entry of the vocabulary array). The API accepts ids of
# up to MAX_ID_LENGTH characters, so every id a loader keeps can be queried.

MAX_LINE_BYTES = 1 << 20
"""Lines longer than this many bytes are skipped as ``line_too_long`` (``CHORUS_MAX_LINE_BYTES`` overrides it)."""
MAX_DECOMPRESSION_RATIO = 100.0
"""A gzip file inflating to more than this many times its compressed size is refused
(``CHORUS_MAX_DECOMPRESSION_RATIO`` overrides it; 0 turns the guard off). Review dumps inflate 3-10 times."""


def limit(variable: str, default: float) -> float:
    """The non-negative number in the environment variable ``variable``, else ``default``.

    Raises
    ------
    DataError : a value that is not a non-negative number (the message names the variable).
    """
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise DataError(f"{variable} must be a non-negative number, got {text!r}")
    return value


RATIO_GRACE_BYTES = 64 << 20
"""The guard lets the first this many decompressed bytes through whatever the ratio (small files, long headers)."""


class DecompressionGuard(io.RawIOBase):
    """A gzip stream that raises :class:`DataError` once it has produced more than ``max_ratio`` times the
    compressed bytes it consumed (after the first ``grace`` bytes): a decompression bomb or a damaged file ends
    with a clear message instead of filling memory or running for minutes."""

    def __init__(
        self, gz: gzip.GzipFile, position: Callable[[], int], path: Path, max_ratio: float, grace: int
    ) -> None:
        self.gz, self.position, self.path, self.max_ratio, self.grace = gz, position, path, max_ratio, grace
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.gz.read(size)
        self.produced += len(data)
        if self.max_ratio and self.produced > self.grace:
            consumed = max(1, self.position())
            if self.produced > self.max_ratio * consumed:
                raise DataError(
                    f"{self.path} decompresses to more than {self.max_ratio:g} times its size ({self.produced:,} "
                    f"bytes from the first {consumed:,}): a decompression bomb or a damaged file, not a review "
                    "dump; refusing to read further (CHORUS_MAX_DECOMPRESSION_RATIO raises the limit)"
                )
        return data


@contextlib.contextmanager
def raw_stream(
    path: Path, max_ratio: float | None = None, grace: int = RATIO_GRACE_BYTES
) -> Iterator[tuple[io.RawIOBase | io.BufferedIOBase, Callable[[], int]]]:
    """Binary stream of the (decompressed) content and a function giving the position in the file on disk.

    ``max_ratio``: the :class:`DecompressionGuard` limit for a gzip file (None: :data:`MAX_DECOMPRESSION_RATIO`)."""
    with open(path, "rb") as raw:
        if raw.peek(2)[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                ratio = (
                    limit("CHORUS_MAX_DECOMPRESSION_RATIO", MAX_DECOMPRESSION_RATIO) if max_ratio is None else max_ratio
                )
                yield DecompressionGuard(gz, raw.tell, path, ratio, grace), raw.tell
        else:
            yield raw, raw.tell


def line_blocks(
    stream: io.RawIOBase | io.BufferedIOBase,
    report: LoadReport,
    block_bytes: int = CHUNK_BYTES,
    max_line: int | None = None,
    on_block: Callable[[], object] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Whole lines of ``stream``, in blocks: (line number of the block's first line, bytes ending with ``\\n``).

    A last line without a newline gets one. A line longer than ``max_line`` bytes (None:
    :data:`MAX_LINE_BYTES`) is counted in ``report`` as ``line_too_long`` and left out (the blocks around it
    keep their true line numbers); it is never held whole: memory stays within a few blocks. ``on_block`` is
    called after every read (for progress).
    """
    cap = int(limit("CHORUS_MAX_LINE_BYTES", MAX_LINE_BYTES)) if max_line is None else max_line

    def skip(number: int, head: bytes) -> None:
        text = head[:100].decode("utf-8", "replace")
        report.skip(number, "line_too_long", f"{text}... (over {cap:,} bytes)")

    line_no = 1
    pieces: list[bytes] = []  # the start of a line that continues in the next block (at most ``cap`` bytes)
    held = 0
    skipping: bytes | None = None  # the head of an over-long line, while the rest of it streams past
    while True:
        block = stream.read(block_bytes)
        if on_block is not None:
            on_block()
        if not block:
            if skipping is not None:
                skip(line_no, skipping)
            elif pieces:
                yield line_no, b"".join(pieces) + b"\n"
            return
        first = block.find(b"\n")
        if first < 0:  # the whole block continues the current line
            if skipping is None:
                pieces.append(block)
                held += len(block)
                if held > cap:
                    skipping, pieces, held = pieces[0][:100], [], 0
            continue
        start = 0
        if skipping is not None or pieces:  # the carried line ends in this block
            if skipping is None and held + first <= cap:
                yield line_no, b"".join(pieces) + block[: first + 1]  # joined once: linear in its length
            else:
                skip(line_no, pieces[0] if skipping is None else skipping)
            line_no += 1
            pieces, held, skipping, start = [], 0, None, first + 1
        last = block.rfind(b"\n")
        if start <= last:
            yield from _short_lines(block, start, last + 1, cap, line_no, skip)
            line_no += block.count(b"\n", start, last + 1)
        if last + 1 < len(block):
            tail = block[last + 1 :]
            if len(tail) > cap:
                skipping = tail[:100]
            else:
                pieces, held = [tail], len(tail)


def _short_lines(
    block: bytes, start: int, end: int, cap: int, number: int, skip: Callable[[int, bytes], None]
) -> Iterator[tuple[int, bytes]]:
    """``block[start:end]`` (whole lines, the first numbered ``number``) without its lines over ``cap`` bytes,
    which go to ``skip``: (line number, bytes) of each run of lines between them."""
    pos = start
    while pos < end:  # fast check: hop to the last newline within cap + 1 bytes; none there means a long line
        last = block.rfind(b"\n", pos, min(end, pos + cap + 1))
        if last < 0:
            break
        pos = last + 1
    else:
        yield number, block if (start, end) == (0, len(block)) else block[start:end]
        return
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8, count=end - start, offset=start) == 10) + start
    begins = np.concatenate(([start], ends[:-1] + 1))
    lo, lo_line = start, 0
    for k in np.flatnonzero(ends - begins > cap).tolist():
        if begins[k] > lo:
            yield number + lo_line, block[lo : begins[k]]
        skip(number + k, block[begins[k] : begins[k] + 100])
        lo, lo_line = int(ends[k]) + 1, k + 1
    if lo < end:
        yield number + lo_line, block[lo:end] if (lo, end) != (0, len(block)) else block


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

    def __init__(
        self,
        cols: RawColumns,
        report: LoadReport,
        scale: RatingScale,
        max_line: int | None = None,
        max_ratio: float | None = None,
        text_max_rows: int | None = None,
    ) -> None:
        self.cols, self.report, self.scale = cols, report, scale
        # the text column is dropped as soon as more rows than this are accepted (None: never); see load_ratings
        self.text_max_rows, self.accepted, self.text_dropped = text_max_rows, 0, False
        # the limits of the reading itself (see line_blocks and raw_stream; None: the module defaults)
        self.max_line, self.max_ratio = max_line, max_ratio
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
        self.accepted += int(keep.size)
        if cols.text is not None and self.text_max_rows is not None and self.accepted > self.text_max_rows:
            cols.text, self.text_dropped = None, True
        for name, (values, _) in (extras or {}).items():
            target = getattr(cols, name)
            if target is None:  # the text, dropped above
                continue
            if isinstance(values, np.ndarray):
                target.append(values[keep])
            else:
                target.append([values[k] for k in keep.tolist()])
        return keep, i

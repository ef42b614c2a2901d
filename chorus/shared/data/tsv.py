"""A vectorised reader for the Amazon Customer Reviews TSV format.

The format has no quoting, so a row is a line with exactly 14 tabs. Instead of splitting every line into
Python strings, each block of the (decompressed) file is viewed as a ``uint8`` array: newline and tab positions
come from ``np.flatnonzero``, the fields Chorus needs are cut out as fixed-width byte arrays (ids) or decoded
arithmetically (star rating, votes, date), and only the rows whose fields fail the fast checks, and one title
per item, go through Python. A million rows take about a second plus decompression on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from chorus.shared.data.ratings import MAX_TITLE_LENGTH
from chorus.shared.data.rows import MAX_ID_LENGTH, TSV_HEADER, ChunkFilter, floats, ints, line_blocks, raw_stream
from chorus.shared.progress import Progress

BLOCK_BYTES = 32 << 20
TITLE_BYTES = 4 * (MAX_TITLE_LENGTH + 1)
N_TABS = 14
F_CUSTOMER, F_PRODUCT, F_TITLE, F_STARS, F_HELPFUL, F_TOTAL, F_VERIFIED, F_HEADLINE, F_BODY, F_DATE = (
    1,
    3,
    5,
    7,
    8,
    9,
    11,
    12,
    13,
    14,
)

ParsedT = TypeVar("ParsedT")


class _Lines:
    """Lazy access to the text of line ``k`` of a block (for skip examples and fallbacks)."""

    def __init__(self, buf: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        self.buf, self.starts, self.ends = buf, starts, ends

    def __getitem__(self, k: int) -> str:
        return self.buf[self.starts[k] : self.ends[k]].decode("utf-8", "replace").rstrip("\r")


def _fixed_width(a: np.ndarray, s: np.ndarray, e: np.ndarray, rows_per_step: int = 16384) -> np.ndarray:
    """Bytes ``a[s:e]`` of every row as one ``S<w>`` array (w = the longest field, at most MAX_ID_LENGTH).

    Cut in steps of rows so the temporary index matrix stays small whatever the width."""
    lengths = e - s
    width = max(1, int(lengths.max()) if lengths.size else 1)
    out = np.zeros((s.size, width), dtype=np.uint8)
    cols = np.arange(width)
    for lo in range(0, s.size, rows_per_step):
        hi = min(s.size, lo + rows_per_step)
        idx = s[lo:hi, None] + cols
        out[lo:hi] = np.where(idx < e[lo:hi, None], a[np.minimum(idx, a.size - 1)], 0)
    return out.view(f"S{width}").ravel()


def _digits(a: np.ndarray, s: np.ndarray, e: np.ndarray, max_len: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Parse unsigned decimal fields; (int64 values, ok mask). Fields that are empty, too long or hold a
    non-digit are not ok (the caller re-parses them in Python)."""
    lengths = e - s
    ok = (lengths >= 1) & (lengths <= max_len)
    value = np.zeros(s.size, dtype=np.int64)
    for pos in range(max_len):
        live = ok & (lengths > pos)
        if not live.any():
            break
        d = a[np.where(live, s + pos, 0)].astype(np.int64) - 48
        ok &= ~live | ((d >= 0) & (d <= 9))
        value = np.where(live, value * 10 + d, value)
    return value, ok


def _python_fallback(
    lines: _Lines, fields: list[int], rows: np.ndarray, parse: Callable[..., ParsedT]
) -> list[ParsedT]:
    out = []
    for r in rows.tolist():
        parts = lines[r].split("\t")
        out.append(parse(*[parts[f] for f in fields]))
    return out


def _dates(a: np.ndarray, s: np.ndarray, e: np.ndarray, lines: _Lines, rows: np.ndarray):
    """``YYYY-MM-DD`` to unix seconds; (int64, ok). Anything else is parsed by numpy in Python."""
    e = np.where((e > s) & (a[np.maximum(e - 1, 0)] == 13), e - 1, e)  # a CRLF file leaves \r on the last field
    fast = (e - s) == 10
    pos = np.where(fast, s, 0)
    dig = a[pos[:, None] + np.array([0, 1, 2, 3, 5, 6, 8, 9])].astype(np.int64) - 48
    fast &= (dig >= 0).all(1) & (dig <= 9).all(1) & (a[pos + 4] == 45) & (a[pos + 7] == 45)
    year = dig[:, 0] * 1000 + dig[:, 1] * 100 + dig[:, 2] * 10 + dig[:, 3]
    month = dig[:, 4] * 10 + dig[:, 5]
    day = dig[:, 6] * 10 + dig[:, 7]
    fast &= (month >= 1) & (month <= 12) & (day >= 1)
    first = (np.where(fast, year, 1970) - 1970).astype("datetime64[Y]") + np.where(fast, month - 1, 0).astype(
        "timedelta64[M]"
    )
    first_day = first.astype("datetime64[D]")
    next_day = (first + np.timedelta64(1, "M")).astype("datetime64[D]")
    fast &= day <= (next_day - first_day).astype(np.int64)
    secs = (first_day + np.where(fast, day - 1, 0).astype("timedelta64[D]")).astype("datetime64[s]").astype(np.int64)
    ok = fast.copy()
    slow = np.flatnonzero(~fast)
    if slow.size:

        def parse(text: str) -> int | None:
            try:
                d = np.datetime64(text.strip(), "D")
            except ValueError:
                return None
            return None if np.isnat(d) else int(d.astype("datetime64[s]").astype(np.int64))

        vals = _python_fallback(lines, [F_DATE], rows[slow], parse)
        secs[slow] = [0 if v is None else v for v in vals]
        ok[slow] = [v is not None for v in vals]
    return secs, ok


def read_amazon_tsv(path: Path, filt: ChunkFilter, progress: Progress, size: int, with_text: bool) -> None:
    cols = filt.cols
    cols.title_by_code = {}
    cols.verified, cols.helpful, cols.total = [], [], []
    if with_text:
        cols.text = []
    with raw_stream(path, filt.max_ratio) as (stream, position):
        blocks = line_blocks(stream, filt.report, BLOCK_BYTES, filt.max_line, lambda: progress.update(position()))
        for line_no, data in blocks:
            if line_no == 1 and data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                data = data[3:]
            if line_no == 1 and data.startswith(("\t".join(TSV_HEADER[:2]) + "\t").encode()):
                skip = data.index(b"\n") + 1
                data, line_no = data[skip:], 2
            if data:  # the text only while it is kept (load_ratings's text_max_rows)
                _block(data, line_no, filt, cols.text is not None)


def _block(buf: bytes, first_line: int, filt: ChunkFilter, with_text: bool) -> int:
    """Parse one block of whole lines; return the number of lines in it."""
    a = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    n = ends.size
    lines = _Lines(buf, starts, ends)
    numbers = np.arange(first_line, first_line + n, dtype=np.int64)
    tabs = np.flatnonzero(a == 9)
    per_line = np.bincount(np.searchsorted(ends, tabs), minlength=n)
    valid = per_line == N_TABS
    filt.reject(numbers, lines, ~valid, "wrong_field_count")
    rows = np.flatnonzero(valid)
    first_tab = (np.cumsum(per_line) - per_line)[rows]
    T = tabs[first_tab[:, None] + np.arange(N_TABS)]  # (rows, 14): tab positions of each valid row
    too_long = ((T[:, F_CUSTOMER] - T[:, F_CUSTOMER - 1] - 1) > MAX_ID_LENGTH) | (
        (T[:, F_PRODUCT] - T[:, F_PRODUCT - 1] - 1) > MAX_ID_LENGTH
    )
    if too_long.any():
        filt.reject(numbers[rows], _Rows(lines, rows), too_long, "id_too_long")
        rows, T = rows[~too_long], T[~too_long]

    def field(k: int) -> tuple[np.ndarray, np.ndarray]:
        s = starts[rows] if k == 0 else T[:, k - 1] + 1
        e = ends[rows] if k == N_TABS else T[:, k]
        return s, e

    users = _fixed_width(a, *field(F_CUSTOMER))
    items = _fixed_width(a, *field(F_PRODUCT))

    s, e = field(F_STARS)
    one = (e - s) == 1
    digit = a[s].astype(np.float64) - 48
    rating = np.where(one & (digit >= 0) & (digit <= 9), digit, np.nan)
    slow = np.flatnonzero(np.isnan(rating))
    if slow.size:
        rating[slow] = floats(_python_fallback(lines, [F_STARS], rows[slow], lambda x: x))

    helpful, ok_h = _digits(a, *field(F_HELPFUL))
    total, ok_t = _digits(a, *field(F_TOTAL))
    for values, ok, f in ((helpful, ok_h, F_HELPFUL), (total, ok_t, F_TOTAL)):
        slow = np.flatnonzero(~ok)
        if slow.size:
            parsed, parsed_ok = ints(_python_fallback(lines, [f], rows[slow], lambda x: x))
            values[slow], ok[slow] = parsed, parsed_ok & (parsed >= 0)
    votes_ok = ok_h & ok_t & (total >= helpful)

    s, e = field(F_VERIFIED)
    verified = ((e - s) == 1) & (a[s] == ord("Y"))
    ts, ts_ok = _dates(a, *field(F_DATE), lines, rows)

    extras = {"verified": (verified, None), "helpful": (helpful, votes_ok), "total": (total, None)}
    if with_text:
        extras["text"] = (_python_fallback(lines, [F_HEADLINE, F_BODY], rows, lambda h, b: f"{h}\n{b}"), None)
    keep, item_codes = filt.accept(numbers[rows], _Rows(lines, rows), users, items, rating, ts, ts_ok, extras)

    # one title per item: the last accepted row of each item in this block (later blocks override)
    kept_codes = item_codes[keep]
    rev = kept_codes[::-1]
    _, last_in_rev = np.unique(rev, return_index=True)
    last_rows = keep[::-1][last_in_rev]
    ts_, te_ = field(F_TITLE)
    titles = filt.cols.title_by_code
    assert titles is not None  # read_amazon_tsv sets it: TSV rows carry titles
    for code, r in zip(item_codes[last_rows].tolist(), last_rows.tolist(), strict=True):
        # enough bytes for MAX_TITLE_LENGTH + 1 characters, so that assemble() sees, cuts and counts a long title
        titles[code] = buf[ts_[r] : min(te_[r], ts_[r] + TITLE_BYTES)].decode("utf-8", "replace")
    return n


class _Rows:
    """Lines of the valid rows only, indexed by row."""

    def __init__(self, lines: _Lines, rows: np.ndarray) -> None:
        self.lines, self.rows = lines, rows

    def __getitem__(self, k: int) -> str:
        return self.lines[int(self.rows[k])]

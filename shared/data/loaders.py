"""Readers for review dumps: Amazon TSV, McAuley Amazon JSON lines, MovieLens 100K and MovieLens CSV.

Each reader walks the file in blocks of lines, splits fields with ``str.split``
and converts whole columns with numpy, so no Python object is built per row beyond the split itself. Every row
is either accepted or skipped with a reason (:data:`REASONS`); the first few skipped rows are kept with their
line numbers. Files may be plain or gzip (recognised by content, not by name).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from chorus.shared.data.ratings import LoadReport, Ratings, RatingScale, RawColumns, assemble
from chorus.shared.data.rows import CHUNK_BYTES, TRUE_WORDS, ChunkFilter, floats, ints
from chorus.shared.data.tsv import read_amazon_tsv
from chorus.shared.errors import DataError
from chorus.shared.progress import Progress

FORMATS = ("amazon-tsv", "amazon-json", "movielens-100k", "movielens-csv")

SCALES = {
    "amazon-tsv": RatingScale(1.0, 5.0, 1.0),
    "amazon-json": RatingScale(1.0, 5.0, 1.0),
    "movielens-100k": RatingScale(1.0, 5.0, 1.0),
    "movielens-csv": RatingScale(0.5, 5.0, 0.5),
}

#: Why a row can be skipped, in the order the checks run (a row is counted under its first failure).
REASONS = (
    "bad_json",
    "wrong_field_count",
    "id_too_long",
    "empty_user_id",
    "empty_item_id",
    "bad_rating",
    "rating_out_of_scale",
    "bad_timestamp",
    "bad_votes",
    "duplicate_pair",
)


def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    """Open plain or gzip text; lines end at ``\\n`` only and keep any ``\\r`` (stripped by the readers)."""
    raw = open(path, "rb")  # noqa: SIM115 - handed to the wrapper, closed with it
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark at the start is not part of the first field
    return io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="\n")


def _first_line(path: Path) -> str:
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                return line.rstrip("\r\n")
    return ""


def detect_format(path: Path) -> str:
    """Guess the format from the file name and its first non-empty line."""
    name = path.name.lower()
    first = _first_line(path)
    if first.startswith("marketplace\tcustomer_id") or name.endswith((".tsv", ".tsv.gz")):
        return "amazon-tsv"
    if first.lstrip().startswith("{") or name.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")):
        return "amazon-json"
    if first.lower().startswith("userid,movieid") or name in ("ratings.csv", "ratings.csv.gz"):
        return "movielens-csv"
    parts = first.split("\t")
    if len(parts) == 4 and all(p.strip().lstrip("-").replace(".", "", 1).isdigit() for p in parts):
        return "movielens-100k"
    raise DataError(
        f"cannot tell the format of {path}: name one with --format ({', '.join(FORMATS)}); "
        f"first line starts {first[:60]!r}"
    )


def _chunks(f: io.TextIOBase, progress: Progress, size: int) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number of the first line, lines without ``\\n``; a ``\\r`` before it is left in place).

    Reads fixed-size blocks and splits them with one ``str.split`` call, carrying the partial last line over.
    """
    line_no = 1
    raw = f.buffer  # type: ignore[attr-defined] # a TextIOWrapper, as _open_text makes
    carry = ""
    while True:
        block = f.read(CHUNK_BYTES)
        if not block:
            if carry:
                yield line_no, [carry]
            return
        lines = (carry + block).split("\n")
        carry = lines.pop()
        if lines:
            yield line_no, lines
            line_no += len(lines)
        if size:
            try:
                progress.update(raw.fileobj.tell() if hasattr(raw, "fileobj") else raw.tell())
            except (OSError, ValueError, AttributeError):
                pass


def _split_rows(
    start: int, lines: list[str], sep: str, n_fields: int, filt: ChunkFilter
) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """Split lines on ``sep``; count rows with the wrong number of fields; skip blank lines silently
    only when they are the file's trailing newline artefacts (an empty line is counted otherwise)."""
    rows = [ln.split(sep) for ln in lines]
    nums = np.arange(start, start + len(lines), dtype=np.int64)
    good = [k for k, r in enumerate(rows) if len(r) == n_fields]
    if len(good) != len(rows):
        bad = np.ones(len(rows), dtype=bool)
        bad[good] = False
        filt.reject(nums, lines, bad, "wrong_field_count")
        rows = [rows[k] for k in good]
        lines = [lines[k] for k in good]
        nums = nums[good]
    return nums, lines, rows


def _number(value: object) -> int | float | str:
    """A JSON value as something ``float`` may parse; booleans, lists and objects become "" (not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return ""
    return value


def _read_amazon_json(path: Path, filt: ChunkFilter, progress: Progress, size: int, with_text: bool) -> None:
    cols = filt.cols
    cols.helpful, cols.total, cols.verified = [], [], []
    if with_text:
        cols.text = []
    saw_verified = False
    with _open_text(path) as f:
        for start, lines in _chunks(f, progress, size):
            nums = np.arange(start, start + len(lines), dtype=np.int64)
            recs, bad = [], np.zeros(len(lines), dtype=bool)
            for k, ln in enumerate(lines):
                try:
                    rec = json.loads(ln)
                    if not isinstance(rec, dict):
                        raise ValueError("not an object")
                    recs.append(rec)
                except ValueError:
                    bad[k] = True
            if bad.any():
                filt.reject(nums, lines, bad, "bad_json")
                nums = nums[~bad]
                lines = [ln for ln, b in zip(lines, bad, strict=True) if not b]

            def field(name: str, default: object = "") -> list[object]:
                return [r.get(name, default) for r in recs]  # noqa: B023 - used within this iteration

            ratings = floats([_number(v) for v in field("overall", "")])
            raw_ts = floats([_number(v) for v in field("unixReviewTime", "")])
            ts_ok = np.isfinite(raw_ts) & (raw_ts == np.round(raw_ts)) & (np.abs(raw_ts) < 2**53)
            ts = np.where(ts_ok, raw_ts, 0).astype(np.int64)
            votes = [v if isinstance(v, list) and len(v) == 2 else [0, 0] for v in field("helpful", [0, 0])]
            helpful, ok_h = ints([v[0] for v in votes])
            total, ok_t = ints([v[1] for v in votes])
            ver = field("verified", None)
            saw_verified = saw_verified or any(v is not None for v in ver)
            extras: dict[str, tuple[Sequence[object] | np.ndarray, np.ndarray | None]] = {
                "helpful": (helpful, ok_h & ok_t & (helpful >= 0) & (total >= helpful)),
                "total": (total, None),
                "verified": (
                    np.array(
                        [v is True or v == 1 or (isinstance(v, str) and v.lower() in TRUE_WORDS) for v in ver],
                        dtype=bool,
                    ),
                    None,
                ),
            }
            if with_text:
                extras["text"] = ([f"{r.get('summary', '')}\n{r.get('reviewText', '')}" for r in recs], None)
            filt.accept(
                nums,
                lines,
                ["" if u is None else str(u) for u in field("reviewerID", None)],
                ["" if i is None else str(i) for i in field("asin", None)],
                ratings,
                ts,
                ts_ok,
                extras,
            )
    if not saw_verified:
        cols.verified = None  # the 2014 release has no such field: report null, not 0%


def _read_four_columns(
    path: Path, filt: ChunkFilter, progress: Progress, size: int, sep: str, header: str | None
) -> None:
    """MovieLens rows: user, item, rating, timestamp separated by ``sep``, after an optional header line
    starting with ``header`` (case-insensitive)."""
    with _open_text(path) as f:
        for start, lines in _chunks(f, progress, size):
            if header and start == 1 and lines and lines[0].lower().startswith(header):
                lines, start = lines[1:], 2
            nums, lines, rows = _split_rows(start, lines, sep, 4, filt)
            ts, ts_ok = ints([r[3] for r in rows])
            filt.accept(
                nums,
                lines,
                [r[0].strip() for r in rows],
                [r[1].strip() for r in rows],
                floats([r[2] for r in rows]),
                ts,
                ts_ok,
            )


def _read_movielens_100k(path: Path, filt: ChunkFilter, progress: Progress, size: int, with_text: bool):
    _read_four_columns(path, filt, progress, size, "\t", None)
    titles: dict[str, str] = {}
    side = path.with_name("u.item")
    if side.exists():
        with open(side, encoding="latin-1") as f:
            for ln in f:
                parts = ln.rstrip("\r\n").split("|")
                if len(parts) >= 2:
                    titles[parts[0]] = parts[1]
    return titles


def _read_movielens_csv(path: Path, filt: ChunkFilter, progress: Progress, size: int, with_text: bool):
    _read_four_columns(path, filt, progress, size, ",", "userid,")
    titles: dict[str, str] = {}
    side = path.with_name("movies.csv")
    if side.exists():
        with open(side, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if len(row) >= 2:
                    titles[row[0]] = row[1]
    return titles


_READERS: dict[str, Callable] = {
    "amazon-tsv": read_amazon_tsv,
    "amazon-json": _read_amazon_json,
    "movielens-100k": _read_movielens_100k,
    "movielens-csv": _read_movielens_csv,
}


def load_ratings(
    path: str | os.PathLike, format: str | None = None, *, with_text: bool = False, progress: bool = True
) -> Ratings:
    """Load a review dump into a :class:`Ratings`.

    Parameters
    ----------
    path : the data file (plain or gzip).
    format : one of :data:`FORMATS`, or None to detect it from the name and first line.
    with_text : also keep review text (costs memory on large files).
    progress : show a progress bar on a terminal (never in pipes or CI).

    Raises
    ------
    DataError : the file is missing or unreadable, the format unknown, or no row is valid.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such data file: {p}")
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    try:
        if format is None:
            format = detect_format(p)
        scale = SCALES[format]
        report = LoadReport(path=str(p), format=format)
        cols = RawColumns()
        filt = ChunkFilter(cols, report, scale)
        size = p.stat().st_size
        with Progress(f"loading {p.name}", total=size) as bar:
            bar.enabled = bar.enabled and progress
            titles = _READERS[format](p, filt, bar, size, with_text)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {p}: {str(exc) or type(exc).__name__} (a damaged or truncated file?)") from exc
    accepted = sum(len(c) for c in cols.users)
    report.rows_read = accepted + report.skipped_rows
    if accepted == 0:
        reasons = ", ".join(f"{r}: {c}" for r, c in sorted(report.skipped_by_reason.items())) or "the file is empty"
        raise DataError(f"{p} has no valid {format} row ({reasons})")
    return assemble(cols, scale, report, title_by_item=titles)

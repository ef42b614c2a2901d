"""Readers for review dumps: Amazon TSV, McAuley Amazon JSON lines, MovieLens 100K and MovieLens CSV.

Each reader walks the file in blocks of lines, splits fields with ``str.split``
and converts whole columns with numpy, so no Python object is built per row beyond the split itself. Every row
is either accepted or skipped with a reason (:data:`REASONS`); the first few skipped rows are kept with their
line numbers. Files may be plain or gzip (recognised by content, not by name).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from chorus.shared.contract.errors import DataError
from chorus.shared.contract.names import MAX_ID_LENGTH
from chorus.shared.data.ratings import LoadReport, Ratings, RatingScale, RawColumns, assemble
from chorus.shared.data.rows import (
    CHUNK_BYTES,
    TRUE_WORDS,
    TSV_HEADER,
    ChunkFilter,
    floats,
    ints,
    line_blocks,
    raw_stream,
)
from chorus.shared.data.tsv import read_amazon_tsv
from chorus.shared.progress import Progress

FORMATS = ("amazon-tsv", "amazon-json", "movielens-100k", "movielens-csv")
#: The formats whose rows carry review text (``load_ratings(..., with_text=True)`` keeps it).
TEXT_FORMATS = ("amazon-tsv", "amazon-json")

SCALES = {
    "amazon-tsv": RatingScale(1.0, 5.0, 1.0),
    "amazon-json": RatingScale(1.0, 5.0, 1.0),
    "movielens-100k": RatingScale(1.0, 5.0, 1.0),
    "movielens-csv": RatingScale(0.5, 5.0, 0.5),
}

#: Why a row can be skipped, in the order the checks run (a row is counted under its first failure).
REASONS = (
    "line_too_long",
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


#: What a row of each format holds, for messages about rows that do not.
ROW_SHAPES = {
    "amazon-tsv": f"{len(TSV_HEADER)} tab-separated fields, the columns of the Amazon Customer Reviews header "
    f"({', '.join(TSV_HEADER[:3])} ... {TSV_HEADER[-1]})",
    "amazon-json": "one JSON object (reviewerID, asin, overall, unixReviewTime ...)",
    "movielens-100k": "4 tab-separated fields: user id, item id, rating, timestamp",
    "movielens-csv": "4 comma-separated fields: userId,movieId,rating,timestamp",
}
_SEPARATORS = {"amazon-tsv": "\t", "movielens-100k": "\t", "movielens-csv": ","}
_RATING_FIELDS = {"amazon-tsv": "star_rating", "amazon-json": "overall"}
_TIME_FIELDS = {
    "amazon-tsv": "review_date must be a date (YYYY-MM-DD)",
    "amazon-json": "unixReviewTime must be a whole number of seconds since 1970",
}


def explain(reason: str, format: str) -> str:
    """Why a row of a ``format`` file is skipped for ``reason`` (one of :data:`REASONS`), as a sentence."""
    scale = SCALES[format]
    sentences = {
        "line_too_long": "a line over the line limit (CHORUS_MAX_LINE_BYTES, default 1 MiB) holds no review",
        "bad_json": "each line must be one JSON object",
        "wrong_field_count": f"each {format} row has {ROW_SHAPES[format]}",
        "id_too_long": f"user and item ids may be at most {MAX_ID_LENGTH} bytes long",
        "empty_user_id": "the user id is empty",
        "empty_item_id": "the item id is empty",
        "bad_rating": f"{_RATING_FIELDS.get(format, 'the rating')} must be a number",
        "rating_out_of_scale": f"{format} ratings run from {scale.low:g} to {scale.high:g} in steps of {scale.step:g}",
        "bad_timestamp": _TIME_FIELDS.get(format, "the timestamp must be a whole number of seconds since 1970"),
        "bad_votes": "helpful and total votes must be whole numbers, the helpful ones at most the total",
        "duplicate_pair": "the same user reviewed the same item again; the newest review is kept",
    }
    return sentences[reason]


def describe_skip(line: int, reason: str, text: str, format: str) -> str:
    """One skipped row for people: its line, the reason, the row's start, and what such a row must hold."""
    counted = ""
    if reason == "wrong_field_count" and format in _SEPARATORS:
        n = len(text.split(_SEPARATORS[format]))
        counted = f"{n} field{'s' if n != 1 else ''}; "
    shown = text[:80].replace("\ufffd", "?")  # bytes that are not UTF-8
    return f"line {line}, {reason}: {shown!r} ({counted}{explain(reason, format)})"


#: How much of the decompressed start of a file format detection reads (never a whole first line).
DETECT_BYTES = 64 << 10


def _head(path: Path) -> bytes:
    """The first :data:`DETECT_BYTES` bytes of the (decompressed) file."""
    with raw_stream(path) as (stream, _):
        return stream.read(DETECT_BYTES)


def _first_line(head: bytes) -> str:
    """The first non-empty line of ``head`` (cut at its end when longer)."""
    for line in head.decode("utf-8-sig", "replace").split("\n"):
        if line.strip():
            return line.rstrip("\r")
    return ""


def _binary(head: bytes) -> bool:
    """Whether ``head`` is no text: a NUL byte (git's test), or over a tenth of it neither UTF-8 nor printable."""
    if b"\0" in head:
        return True
    text = head.decode("utf-8", "replace")
    odd = sum(1 for c in text if c == "\ufffd" or (not c.isprintable() and c not in "\t\r\n"))
    return odd > len(text) / 10


def _not_text(path: Path) -> DataError:
    return DataError(
        f"{path} is not a review dump: it holds binary data, not text. Chorus reads text files (plain or gzip) "
        f"in these formats: {', '.join(FORMATS)}"
    )


def detect_format(path: Path) -> str:
    """Guess the format from the file name and its first non-empty line.

    Raises
    ------
    DataError : neither tells; or the file is not text at all.
    """
    name = path.name.lower()
    head = _head(path)
    first = _first_line(head)
    if first.startswith("marketplace\tcustomer_id") or name.endswith((".tsv", ".tsv.gz")):
        return "amazon-tsv"
    if first.lstrip().startswith("{") or name.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")):
        return "amazon-json"
    if first.lower().startswith("userid,movieid") or name in ("ratings.csv", "ratings.csv.gz"):
        return "movielens-csv"
    parts = first.split("\t")
    if len(parts) == 4 and all(p.strip().lstrip("-").replace(".", "", 1).isdigit() for p in parts):
        return "movielens-100k"
    if _binary(head):
        raise _not_text(path)
    raise DataError(
        f"cannot tell the format of {path} from its name or its first line ({first[:60]!r}): name it with "
        f"--format ({', '.join(FORMATS)})"
    )


def check_data_file(path: Path) -> None:
    """Raise :class:`DataError` saying what is wrong when ``path`` is not a readable file: missing, or a folder
    (then naming the review files in it, when it holds some)."""
    if path.is_file():
        return
    if not path.is_dir():
        raise DataError(f"no such data file: {path}")
    found = []
    for child in sorted(path.iterdir())[:200]:  # a folder of review dumps holds a few files, not thousands
        if child.is_file() and not child.name.startswith("."):
            with contextlib.suppress(DataError, OSError, EOFError, zlib.error):
                found.append(f"{child} ({detect_format(child)})")
        if len(found) == 3:
            break
    hint = f"; review files in it: {', '.join(found)}" if found else ""
    raise DataError(f"{path} is a folder, not a data file: name the review file itself{hint}")


@contextlib.contextmanager
def _chunks(path: Path, filt: ChunkFilter, progress: Progress) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """(line number of the first line, lines without ``\\n``; a ``\\r`` before it is left in place) of each
    block of whole lines of UTF-8 text (:func:`chorus.shared.data.rows.line_blocks`: over-long lines are skipped
    and counted, memory stays within a few blocks)."""
    with raw_stream(path, filt.max_ratio) as (stream, position):
        blocks = line_blocks(stream, filt.report, CHUNK_BYTES, filt.max_line, lambda: progress.update(position()))
        yield ((start, _lines(start, data)) for start, data in blocks)


def _lines(start: int, data: bytes) -> list[str]:
    if start == 1 and data.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not part of the first field
        data = data[3:]
    return data.decode("utf-8", "replace").split("\n")[:-1]


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
    with _chunks(path, filt, progress) as chunks:
        for start, lines in chunks:
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
            if cols.text is not None:  # asked for, and not dropped (load_ratings's text_max_rows)
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
    with _chunks(path, filt, progress) as chunks:
        for start, lines in chunks:
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


def _read_movielens_100k(
    path: Path, filt: ChunkFilter, progress: Progress, size: int, with_text: bool
) -> dict[str, str]:
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


def _read_movielens_csv(
    path: Path, filt: ChunkFilter, progress: Progress, size: int, with_text: bool
) -> dict[str, str]:
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


# path, filter, progress bar, file size, with_text -> titles by raw item id from a side file, or None
_READERS: dict[str, Callable[[Path, ChunkFilter, Progress, int, bool], dict[str, str] | None]] = {
    "amazon-tsv": read_amazon_tsv,
    "amazon-json": _read_amazon_json,
    "movielens-100k": _read_movielens_100k,
    "movielens-csv": _read_movielens_csv,
}


def load_ratings(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    with_text: bool = False,
    text_max_rows: int | None = None,
    progress: bool = True,
    max_line_bytes: int | None = None,
    max_ratio: float | None = None,
) -> Ratings:
    """Load a review dump into a :class:`Ratings`.

    Parameters
    ----------
    path : the data file (plain or gzip).
    format : one of :data:`FORMATS`, or None to detect it from the name and first line.
    with_text : also keep review text (:data:`TEXT_FORMATS`; as Python strings, about 145 bytes a generated
        review).
    text_max_rows : with ``with_text``, keep the text only when the table has at most this many rows (None: at
        any size). The text is read while the rows accepted so far are within it and dropped as soon as they
        pass it, so a large file's text is never held; when duplicates bring a file whose rows passed it back
        within it, the file is read once more with its text.
    progress : show a progress bar on a terminal (never in pipes or CI).
    max_line_bytes : longer lines are skipped as ``line_too_long`` (None:
        :data:`chorus.shared.data.rows.MAX_LINE_BYTES`).
    max_ratio : a gzip file inflating to more than this many times its size is refused (None:
        :data:`chorus.shared.data.rows.MAX_DECOMPRESSION_RATIO`; 0: no limit).

    Raises
    ------
    DataError : the file is missing or unreadable, the format unknown, no row is valid, or a gzip file inflates
        beyond ``max_ratio``.
    """
    p = Path(path)
    check_data_file(p)
    if format is not None and format not in FORMATS:
        raise DataError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    try:
        if format is None:
            format = detect_format(p)
        scale = SCALES[format]
        report = LoadReport(path=str(p), format=format)
        cols = RawColumns()
        filt = ChunkFilter(cols, report, scale, max_line_bytes, max_ratio, text_max_rows if with_text else None)
        size = p.stat().st_size
        with Progress(f"loading {p.name}", total=size) as bar:
            bar.enabled = bar.enabled and progress
            titles = _READERS[format](p, filt, bar, size, with_text)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {p}: {str(exc) or type(exc).__name__} (a damaged or truncated file?)") from exc
    accepted = sum(len(c) for c in cols.users)
    report.rows_read = accepted + report.skipped_rows
    if accepted == 0:
        if not report.skipped_by_reason:
            raise DataError(f"{p} has no valid {format} row: the file is empty")
        if _binary(_head(p)):
            raise _not_text(p)
        counts = ", ".join(f"{c:,} {r}" for r, c in sorted(report.skipped_by_reason.items()))
        first = describe_skip(*min(report.examples), format) if report.examples else ""
        raise DataError(f"{p} has no valid {format} row ({counts} skipped); the first: {first}")
    ratings = assemble(cols, scale, report, title_by_item=titles)
    if filt.text_dropped and text_max_rows is not None and ratings.n <= text_max_rows:
        return load_ratings(
            p, format, with_text=True, progress=progress, max_line_bytes=max_line_bytes, max_ratio=max_ratio
        )
    return ratings

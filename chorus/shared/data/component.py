"""The ``data`` component of an artifact version: the ratings and vocabularies that every service shares
(written by every ``chorus train``), and the variable-width text columns (titles) it stores as offsets and bytes."""

from __future__ import annotations

import numpy as np

from chorus.shared.artifacts import Version, VersionWriter
from chorus.shared.contract.errors import ArtifactError
from chorus.shared.data.ratings import LoadReport, Ratings, RatingScale, text_array

DATA = "data"


def save_data_component(writer: VersionWriter, ratings: Ratings) -> None:
    """Store the ratings and vocabularies every service needs (``chorus.shared.data.Ratings``)."""
    writer.save_array(DATA, "user", ratings.user.astype(np.int32))
    writer.save_array(DATA, "item", ratings.item.astype(np.int32))
    writer.save_array(DATA, "rating", ratings.rating.astype(np.float32))
    writer.save_array(DATA, "timestamp", ratings.timestamp.astype(np.int64))
    writer.save_array(DATA, "user_ids", ratings.user_ids.astype(str))
    writer.save_array(DATA, "item_ids", ratings.item_ids.astype(str))
    offsets, utf8 = encode_texts(ratings.titles)
    writer.save_array(DATA, "titles_offsets", offsets)
    writer.save_array(DATA, "titles_utf8", utf8)
    scale = ratings.scale
    writer.set_component_meta(
        DATA,
        scale={"low": scale.low, "high": scale.high, "step": scale.step},
        format=ratings.report.format,
        load_report=ratings.report.to_dict(),
    )


def encode_texts(texts: np.ndarray | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (int64 offsets (n + 1,), uint8 UTF-8 bytes): string ``k`` is ``utf8[offsets[k]:offsets[k + 1]]``.
    Each takes its own length on disk, where a fixed-width ``<U`` array gives every entry the longest one's."""
    encoded = [str(t).encode("utf-8") for t in np.asarray(texts).tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8)


def decode_texts(offsets: np.ndarray, utf8: np.ndarray, label: str = "texts") -> np.ndarray:
    """The strings :func:`encode_texts` stored, as a variable-width string array.

    Raises
    ------
    ArtifactError : offsets that are not a non-decreasing index of ``utf8``, or bytes that are not UTF-8.
    """
    ends = np.asarray(offsets, dtype=np.int64)
    if ends.ndim != 1 or ends.size < 1 or ends[0] != 0 or ends[-1] != utf8.size or np.any(np.diff(ends) < 0):
        raise ArtifactError(f"{label}: offsets that do not index its {utf8.size} bytes")
    blob = utf8.tobytes()
    bounds = ends.tolist()
    try:
        values = [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{label}: not UTF-8 ({exc})") from None
    return text_array(values)


def _titles(version: Version) -> np.ndarray:
    """The data component's titles: offsets and UTF-8 bytes, or the fixed-width array of older versions."""
    if version.has_array(DATA, "titles_utf8"):
        label = f"version {version.name}: data/titles"
        return decode_texts(version.array(DATA, "titles_offsets"), version.array(DATA, "titles_utf8"), label)
    return text_array(version.array(DATA, "titles").tolist())


def load_data_component(version: Version) -> Ratings:
    """The stored ratings as a ``chorus.shared.data.Ratings`` (arrays read-only, in memory)."""
    meta = version.component_meta(DATA)
    report = LoadReport(
        path=meta["load_report"]["path"], format=meta["format"], rows_read=meta["load_report"]["rows_read"]
    )
    report.skipped_by_reason.update(meta["load_report"]["skipped_by_reason"])
    report.titles_truncated = int(meta["load_report"].get("titles_truncated", 0))
    user, item, rating = version.array(DATA, "user"), version.array(DATA, "item"), version.array(DATA, "rating")
    n_users, n_items = version.array(DATA, "user_ids").shape[0], version.array(DATA, "item_ids").shape[0]
    if not user.shape == item.shape == rating.shape == version.array(DATA, "timestamp").shape:
        raise ArtifactError(f"version {version.name}: the data columns differ in length")
    for what, idx, n in (("user", user, n_users), ("item", item, n_items)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ArtifactError(f"version {version.name}: data/{what} holds an index outside 0..{n - 1}")
    return Ratings(
        user=version.array(DATA, "user"),
        item=version.array(DATA, "item"),
        rating=version.array(DATA, "rating"),
        timestamp=version.array(DATA, "timestamp"),
        user_ids=version.array(DATA, "user_ids"),
        item_ids=version.array(DATA, "item_ids"),
        titles=_titles(version),
        scale=RatingScale(**meta["scale"]),
        report=report,
    )

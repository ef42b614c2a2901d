"""Dataset statistics: counts, mean, histogram, verified fraction, date range and skipped rows (docs/models.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from chorus.shared.data.ratings import Ratings


def _date(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), tz=dt.UTC).date().isoformat()


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def dataset_stats(r: Ratings) -> dict[str, Any]:
    """Counts, mean, histogram over the whole scale, verified fraction (None where the format has no such
    field), date range, and the skipped rows by reason."""
    counts = {_label(v): 0 for v in r.scale.points()}
    values, freq = np.unique(r.rating, return_counts=True)
    for v, c in zip(values.tolist(), freq.tolist(), strict=True):
        counts[_label(v)] = int(c)
    return {
        "reviews": r.n,
        "users": r.n_users,
        "items": r.n_items,
        "mean_rating": round(float(np.mean(r.rating, dtype=np.float64)), 5),
        "rating_histogram": counts,
        "verified_fraction": None if r.verified is None else round(float(np.mean(r.verified)), 5),
        "first_date": _date(r.timestamp.min()),
        "last_date": _date(r.timestamp.max()),
        "skipped_rows": r.report.skipped_rows,
        "skipped_by_reason": dict(sorted(r.report.skipped_by_reason.items())),
        "titles_truncated": r.report.titles_truncated,
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A readable two-column table of :func:`dataset_stats`."""
    lines = []
    for key in ("reviews", "users", "items"):
        lines.append(f"{key:<18}{stats[key]:>14,}")
    lines.append(f"{'mean_rating':<18}{stats['mean_rating']:>14.5f}")
    vf = stats["verified_fraction"]
    lines.append(f"{'verified_fraction':<18}{'n/a (not in format)' if vf is None else f'{vf:.2%}':>14}")
    lines.append(f"{'first_date':<18}{stats['first_date']:>14}")
    lines.append(f"{'last_date':<18}{stats['last_date']:>14}")
    lines.append("rating_histogram")
    total = max(1, stats["reviews"])
    for star, count in stats["rating_histogram"].items():
        bar = "#" * round(40 * count / total)
        lines.append(f"  {star:>4} {count:>12,}  {bar}")
    lines.append(f"{'skipped_rows':<18}{stats['skipped_rows']:>14,}")
    for reason, count in stats["skipped_by_reason"].items():
        lines.append(f"  {reason:<16}{count:>14,}")
    if stats.get("titles_truncated"):
        lines.append(f"{'titles_truncated':<18}{stats['titles_truncated']:>14,}")
    return "\n".join(lines)

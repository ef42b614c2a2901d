"""The demo data set: where it lives, how big it is, and generating it once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DEFAULT_DEMO = "demo/demo.tsv.gz"
"""Where ``chorus demo`` and ``chorus up`` keep the generated reviews (relative to the working directory)."""
DEMO_REVIEWS = 200_000
"""How many reviews the demo data has."""


def ensure_demo_data(
    path: str | Path = DEFAULT_DEMO, reviews: int = DEMO_REVIEWS, seed: int = 0, log: Callable[[str], object] = print
) -> Path:
    """``path``, after generating ``reviews`` synthetic Amazon-TSV reviews into it when it does not exist yet."""
    path = Path(path)
    if not path.exists():
        # imported here so that `chorus --help` and the other subcommands start without numpy
        from chorus.shared.data.synthetic import generate_reviews

        log(f"generating {reviews:,} demo reviews into {path}")
        generate_reviews(path, reviews, seed=seed)
    return path

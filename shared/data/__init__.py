"""Loading review dumps into columnar arrays, splitting them, describing them, and generating demo data."""

from .loaders import FORMATS, REASONS, SCALES, detect_format, load_ratings
from .ratings import LoadReport, Ratings, RatingScale
from .splits import holdout_split, kfold_split
from .stats import dataset_stats, format_stats

__all__ = [
    "FORMATS", "REASONS", "SCALES", "LoadReport", "RatingScale", "Ratings", "dataset_stats", "detect_format",
    "format_stats", "holdout_split", "kfold_split", "load_ratings",
]

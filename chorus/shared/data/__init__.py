"""Loading review dumps into columnar arrays, splitting them, describing them, and generating demo data."""

from chorus.shared.data.loaders import FORMATS, REASONS, SCALES, TEXT_FORMATS, detect_format, load_ratings
from chorus.shared.data.ratings import LoadReport, Ratings, RatingScale
from chorus.shared.data.splits import MIN_TRAINING_ROWS, check_trainable, holdout_split, kfold_split
from chorus.shared.data.stats import dataset_stats, format_stats

__all__ = [
    "FORMATS",
    "MIN_TRAINING_ROWS",
    "REASONS",
    "SCALES",
    "TEXT_FORMATS",
    "LoadReport",
    "RatingScale",
    "Ratings",
    "check_trainable",
    "dataset_stats",
    "detect_format",
    "format_stats",
    "holdout_split",
    "kfold_split",
    "load_ratings",
]

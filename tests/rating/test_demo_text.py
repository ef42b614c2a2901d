"""The demo data's review text carries the rating the way real reviews do: a scorer fitted on it (``chorus train``'s
``text`` component, :func:`chorus.training.text.fit.fit_scorer`) reads praise and complaints in a reviewer's own
sentence, not a star count written out."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.services.rating.text.scorer import ReviewScorer
from chorus.shared.data import load_ratings
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.text.fit import fit_scorer

pytestmark = pytest.mark.timeout(120)

GLOWING = "Great strings, bright tone, stayed in tune."
COMPLAINT = "Broke after a week, sounds thin and buzzes."


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = generate_reviews(tmp_path_factory.mktemp("demo-text") / "reviews.tsv", 5000, seed=0, progress=False)
    return load_ratings(path, with_text=True, progress=False)


@pytest.fixture(scope="module")
def scorer(demo) -> ReviewScorer:
    fitted, _ = fit_scorer(demo, np.arange(demo.n), seed=0)
    return fitted


def test_the_demo_scorer_rates_a_glowing_review_high_and_a_complaint_low(scorer):
    glowing, complaint = scorer.score(GLOWING), scorer.score(COMPLAINT)
    assert glowing.predicted_rating >= 4, glowing
    assert complaint.predicted_rating <= 2.5, complaint
    # what moved them: praise up, the complaint's words down
    assert {t for t, w in glowing.top_terms[:3] if w > 0} & {"great", "bright tone", "stayed in", "in tune", "bright"}
    assert {t for t, w in complaint.top_terms[:3] if w < 0} & {"broke", "buzzes", "sounds thin", "thin", "broke after"}


def test_the_text_never_states_the_star_count(demo):
    words = ("one star", "two stars", "three stars", "four stars", "five stars")
    assert not any(w in t.lower() for t in demo.text.tolist() for w in words)


def test_the_words_of_a_rating_are_noisy_like_real_reviews(demo):
    """Praise is mostly in high ratings and complaints in low ones, but not only: a three- or four-star review can
    say both."""
    text = np.array([t.lower() for t in demo.text.tolist()])
    praise = np.array(["great" in t or "love" in t for t in text])
    complaint = np.array(["broke" in t or "buzzes" in t or "cheaply made" in t for t in text])
    stars = demo.rating
    assert praise[stars == 5].mean() > 3 * praise[stars <= 2].mean()
    assert complaint[stars <= 2].mean() > 3 * complaint[stars >= 4].mean()
    assert (praise & complaint)[(stars == 3) | (stars == 4)].any()

"""The measure registry: every measure has exactly one specification, an unknown one is an error (never computed
as another measure), and each score reads only the terms its specification declares."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.services.similarity import measures
from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.measures import REGISTRY, Term, measure_spec, terms_needed
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import build_table


def test_every_measure_has_one_specification():
    assert set(REGISTRY) == set(Measure)
    for measure, spec in REGISTRY.items():
        assert spec.measure is measure and spec.formula and spec.needs
        assert -1.0 <= spec.lowest < 1.0
        assert measure_spec(measure) is spec and measure_spec(measure.value) is spec


@pytest.mark.parametrize("name", ["euclid", "Jaccard", "", "adjusted_cosine"])
def test_an_unknown_measure_is_a_clear_error(name, hand):
    with pytest.raises(InvalidInput, match=f"unknown measure '{name}': expected one of jaccard, cosine, pearson"):
        measure_spec(name)
    calls = [
        lambda: hand.similar_items(0, 3, name),
        lambda: hand.similar_users(0, 3, name),
        lambda: hand.item_similarity([0], [1], name),
        lambda: hand.user_similarity([0], [1], name),
        lambda: hand.recommend(3, 3, name),
        lambda: hand.predict([3], [0], name),
        lambda: build_table(hand, 3, (name,)),
        lambda: SimilarityConfig(predict_measure=name),
    ]
    for call in calls:
        with pytest.raises(InvalidInput, match="unknown measure"):
            call()


def test_a_measure_without_a_specification_is_refused_not_computed_as_another(monkeypatch, hand):
    partial = {m: s for m, s in REGISTRY.items() if m is not Measure.pearson}
    monkeypatch.setattr(measures, "REGISTRY", partial)
    with pytest.raises(InvalidInput, match="unknown measure 'pearson'"):
        hand.similar_items(0, 3, "pearson", use_table=False)
    with pytest.raises(InvalidInput, match="unknown measure 'pearson'"):
        hand.item_similarity([0], [1], "pearson")
    assert hand.similar_items(0, 3, "jaccard")[0].size  # the others still answer


@pytest.mark.parametrize("measure", list(Measure))
def test_each_score_reads_only_the_terms_it_declares(measure):
    spec = REGISTRY[measure]
    rng = np.random.default_rng(0)
    terms = {term: rng.uniform(0.5, 3.0, 8) for term in terms_needed([spec])}
    terms[Term.common] = np.ones(8)  # at most the smallest count
    terms.update({t: np.full(8, 3.0) for t in (Term.count_a, Term.count_b) if t in terms})
    score = spec.score(terms)  # a KeyError here means a term used but not declared
    assert score.shape == (8,) and score.dtype == np.float64 and np.all(np.isfinite(score))

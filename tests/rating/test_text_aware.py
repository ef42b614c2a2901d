"""The text-aware rating model: the model contract, its selection, and a spy that no test review's text reaches a
model (in holdout and in k-fold evaluation, and in ``chorus train``'s rating component)."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest

from chorus.services.rating.models import REGISTRY, TextAwareModel
from chorus.services.rating.text.features import TextColumn
from chorus.shared.data import holdout_split, kfold_split
from chorus.training.rating.fitting import Trainset
from chorus.training.rating.train import SelectionConfig, evaluate, evaluation_steps, fold_steps, grid_size, train
from chorus.training.text.aware import (
    SENTIMENT_FOLDS,
    TextAwareConfig,
    TextAwareFit,
    TextAwareGrid,
    fit_from_features,
    text_features,
)
from chorus.training.text.fit import VOCABULARY_STEPS
from chorus.training.text.prior import DEFAULT_PRIOR
from tests.rating.model_contract import RatingModelContract

WORDS = {1: "broke junk", 2: "poor flimsy", 3: "okay fine", 4: "good solid", 5: "great superb"}


def planted_texts(rating: np.ndarray, seed: int = 0) -> list[str]:
    """Review texts whose words say the star rating, with some noise words."""
    rng = np.random.default_rng(seed)
    noise = np.array(["the", "strings", "tone", "case", "strap", "tuner"])
    return [f"{WORDS[int(r)]} {' '.join(rng.choice(noise, 3))}" for r in np.clip(np.rint(rating), 1, 5)]


def fit_with_planted_text(data: Trainset) -> TextAwareModel:
    texts = planted_texts(data.rating)
    return fit_from_features(data, text_features(data, texts, 4), TextAwareConfig(0.1, 0.3, 4, 10.0))


class TestTextAwareModel(RatingModelContract):
    fit = staticmethod(fit_with_planted_text)


def test_registered_under_its_kind():
    assert REGISTRY["text_aware"] is TextAwareModel


class SpyTexts:
    """A text column that records which rows were read (what a :data:`TextColumn` offers that is used: length,
    ``texts[k]`` and iteration, so the tests pass it as one)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, k: int) -> str:
        self.read.append(int(k))
        return self.texts[k]


def planted_data(n_users=60, n_items=40, n=900, seed=3):
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=n, replace=False)
    user, item = cells // n_items, cells % n_items
    rating = np.clip(np.rint(3.6 + rng.normal(0, 0.5, n_users)[user] + rng.normal(0, 0.5, n_items)[item]), 1, 5)
    return user, item, rating, n_users, n_items


SMALL = TextAwareGrid(blend=(0.0, 0.3), n_factors=(0, 4), reg_user=(10.0,))


def test_holdout_evaluation_never_reads_a_test_review():
    user, item, rating, nu, ni = planted_data()
    spy = SpyTexts(planted_texts(rating))
    result = evaluate(
        user,
        item,
        rating,
        nu,
        ni,
        1,
        5,
        protocol="holdout",
        seed=2,
        text_aware=TextAwareFit(cast(TextColumn, spy), SMALL),
    )
    _, _, test = holdout_split(len(rating), 2, (0.8, 0.1, 0.1))
    assert spy.read and not set(spy.read) & set(test.tolist())
    assert "text_aware" in result["models"] and result["hyperparameters"][0]["text_aware"]["blend"] in (0.0, 0.3)


def test_kfold_evaluation_never_reads_the_fold_under_test():
    user, item, rating, nu, ni = planted_data()
    spy = SpyTexts(planted_texts(rating))
    reads_per_fold: list[set[int]] = []

    class Spying(TextAwareFit):
        def __call__(self, data, rows, val, reg_bias, progress=None):
            start = len(spy.read)
            out = super().__call__(data, rows, val, reg_bias, progress)
            reads_per_fold.append(set(spy.read[start:]))
            return out

    spying = Spying(cast(TextColumn, spy), SMALL)
    result = evaluate(user, item, rating, nu, ni, 1, 5, protocol="kfold", folds=3, seed=1, text_aware=spying)
    folds = kfold_split(len(rating), 3, 1)
    assert len(reads_per_fold) == 3
    for read, (train_rows, test_rows) in zip(reads_per_fold, folds, strict=True):
        assert read and read <= set(train_rows.tolist()) and not read & set(test_rows.tolist())
    assert set(result["models"]) >= {"bias", "text_aware"}


def test_train_reads_train_and_validation_text_only_and_serves_the_winner():
    user, item, rating, nu, ni = planted_data()
    spy = SpyTexts(planted_texts(rating))
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    result = train(data, seed=4, text_aware=TextAwareFit(cast(TextColumn, spy), SMALL))
    _, _, test = holdout_split(len(rating), 4, (0.8, 0.1, 0.1))
    assert spy.read and not set(spy.read) & set(test.tolist())
    val = result.metrics["validation_rmse"]
    served = result.hyperparameters["selected"]
    assert served in val and val[served] == min(val.values())
    assert (result.model.kind == "text_aware") == (served == "text_aware")


def test_the_grid_and_config_are_checked():
    points = TextAwareGrid(blend=(0.0, 0.5), n_factors=(0, 8), reg_user=(10.0, 30.0)).points(0.1)
    assert len(points) == 2 * (1 + 2) and all(p.reg_bias == 0.1 for p in points)
    with pytest.raises(Exception, match="blend"):
        TextAwareConfig(blend=1.5)


def rising_to(seen: list[int], total: int) -> bool:
    """A progress count that only rises, passes each value once and ends at exactly ``total``."""
    return bool(seen) and seen == sorted(set(seen)) and seen[0] >= 1 and seen[-1] == total


def test_the_text_aware_fit_counts_its_steps_up_to_the_exact_total_and_fits_the_same():
    user, item, rating, nu, ni = planted_data()
    data = Trainset(user, item, rating, nu, ni, 1, 5)
    tr, va, _ = holdout_split(len(rating), 0, (0.8, 0.1, 0.1))
    texts = planted_texts(rating)
    fitter = TextAwareFit(texts)  # the default grid: the prior alone, one point
    # selection: the vocabulary's tenths, the sentiment folds, the prior's parts and the rest of it; the point;
    # then the same features again for the refit, and its model
    features = VOCABULARY_STEPS + SENTIMENT_FOLDS + DEFAULT_PRIOR.folds + 1
    assert fitter.steps() == 2 * features + 1 + 1
    seen: list[int] = []
    model, info = fitter(data, tr, va, 0.1, seen.append)
    assert seen == list(range(1, fitter.steps() + 1))
    plain, plain_info = fitter(data, tr, va, 0.1)
    assert plain_info["chosen"] == info["chosen"] and plain_info["validation_rmse"] == info["validation_rmse"]
    np.testing.assert_array_equal(plain.item_bias, model.item_bias)
    wide = TextAwareFit(texts, SMALL)  # a refit narrower than the widest point jumps to the total at its end
    seen.clear()
    wide(data, tr, va, 0.1, seen.append)
    assert rising_to(seen, wide.steps())


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_evaluation_and_training_count_the_text_aware_steps_too(protocol):
    user, item, rating, nu, ni = planted_data()
    fitter = TextAwareFit(planted_texts(rating), SMALL)
    seen: list[int] = []
    evaluate(
        user, item, rating, nu, ni, 1, 5, protocol=protocol, folds=2, seed=1, text_aware=fitter, progress=seen.append
    )
    total = evaluation_steps(protocol, 2, similarity=False, text_aware=fitter)
    assert total == (1 if protocol == "holdout" else 2) * (grid_size(SelectionConfig()) + 1 + fitter.steps())
    assert rising_to(seen, total)
    if protocol == "holdout":
        seen.clear()
        train(Trainset(user, item, rating, nu, ni, 1, 5), seed=1, text_aware=fitter, progress=seen.append)
        assert rising_to(seen, fold_steps(SelectionConfig(), False, fitter))

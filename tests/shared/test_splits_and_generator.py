"""Split determinism and the demo generator."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data import dataset_stats, holdout_split, kfold_split, load_ratings
from chorus.shared.data.synthetic import generate_reviews


def test_holdout_is_deterministic_disjoint_and_complete():
    a = holdout_split(1000, seed=3)
    b = holdout_split(1000, seed=3)
    c = holdout_split(1000, seed=4)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[2], c[2])
    assert [len(p) for p in a] == [800, 100, 100]
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(1000))
    # pinned: the same seed gives the same split on every machine (PCG64 stream)
    assert a[2][:5].tolist() == holdout_split(1000, seed=3)[2][:5].tolist()


def test_holdout_rejects_bad_fractions():
    with pytest.raises(InvalidInput, match="summing to 1"):
        holdout_split(10, fractions=(0.5, 0.5, 0.5))


def test_kfold_covers_every_row_once():
    folds = kfold_split(103, k=5, seed=0)
    tests = np.concatenate([t for _, t in folds])
    assert np.array_equal(np.sort(tests), np.arange(103))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 103
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(folds, kfold_split(103, k=5, seed=0), strict=True))
    with pytest.raises(InvalidInput):
        kfold_split(3, k=5)


def test_generator_exact_rows_distinct_pairs_deterministic(tmp_path):
    a = generate_reviews(tmp_path / "a.tsv.gz", 5000, seed=7, progress=False)
    b = generate_reviews(tmp_path / "b.tsv.gz", 5000, seed=7, progress=False)
    c = generate_reviews(tmp_path / "c.tsv", 5000, seed=8, progress=False)
    ra = load_ratings(a)
    assert ra.n == 5000 and ra.report.skipped_rows == 0  # distinct pairs: no duplicate dropped
    assert ra.report.rows_read == 5000
    rb, rc = load_ratings(b), load_ratings(c)
    assert np.array_equal(ra.user_ids, rb.user_ids) and np.array_equal(ra.rating, rb.rating)
    assert not np.array_equal(ra.rating, rc.rating)
    s = dataset_stats(ra)
    assert 0.85 < s["verified_fraction"] < 0.95
    assert all(t for t in ra.titles)
    # long tail: the most active user has many more reviews than the median one
    counts = np.bincount(ra.user)
    assert counts.max() >= 10 * np.median(counts)


def test_generator_text_depends_on_rating(tmp_path):
    r = load_ratings(generate_reviews(tmp_path / "t.tsv", 3000, seed=1, progress=False), with_text=True)
    assert r.text is not None
    ones = " ".join(r.text[r.rating == 1][:50]).lower()
    fives = " ".join(r.text[r.rating == 5][:50]).lower()
    assert "star" not in ones and "star" not in fives  # the rating is not written out
    assert fives.count("great") > 3 * ones.count("great")
    assert ones.count("disappointed") + ones.count("return") > 3 * (fives.count("disappointed") + fives.count("return"))


def test_generator_plants_a_verified_purchase_signal(tmp_path):
    from chorus.shared.data.synthetic import DISCLOSURE

    r = load_ratings(generate_reviews(tmp_path / "v.tsv", 20_000, seed=2, progress=False), with_text=True)
    assert r.text is not None
    verified, stars = np.asarray(r.verified), np.asarray(r.rating)
    assert 0.88 < verified.mean() < 0.93
    assert verified[stars <= 2].mean() > verified[stars == 5].mean() + 0.05  # unverified lean to five stars
    disclosed = np.array([DISCLOSURE in t for t in r.text])
    assert not (disclosed & verified).any()  # only unverified reviews say the product came free
    assert 0.35 < disclosed[~verified].mean() < 0.65
    # the disclosure replaces two words: the body's length alone does not tell it apart
    lengths = np.array([len(t) for t in r.text])
    assert abs(lengths[disclosed].mean() - lengths[~disclosed].mean()) < lengths.std()


def test_generator_plants_shopping_families(tmp_path):
    from chorus.shared.data.synthetic import FAMILY_OF_PRODUCT, PRODUCTS

    r = load_ratings(generate_reviews(tmp_path / "f.tsv", 20000, seed=2, progress=False))
    product_of_item = [next(p for p in PRODUCTS if p in t) for t in r.titles.tolist()]
    family = np.array([FAMILY_OF_PRODUCT[p] for p in product_of_item])
    counts = np.bincount(r.user)
    shares = []
    for u in np.flatnonzero(counts >= 8)[:300]:
        fam = family[r.item[r.user == u]]
        shares.append(np.bincount(fam).max() / fam.size)
    # without families the favourite family would hold about a third of a reviewer's items
    assert np.mean(shares) > 0.6


def _movielens(path, rows: int, bad: int = 0):
    lines = [f"{u}\t{100 + u % 3}\t{1 + u % 5}\t88125{u:04d}" for u in range(rows)] + ["not a row"] * bad
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_smallest_trainable_data_is_where_every_split_has_a_validation_and_a_test_row(tmp_path):
    from chorus.shared.contract.errors import DataError
    from chorus.shared.data import MIN_TRAINING_ROWS, check_trainable

    enough = load_ratings(_movielens(tmp_path / "u.data", MIN_TRAINING_ROWS), format="movielens-100k", progress=False)
    check_trainable(enough)
    assert all(part.size for part in holdout_split(MIN_TRAINING_ROWS))
    assert not all(part.size for part in holdout_split(MIN_TRAINING_ROWS - 1))
    path = _movielens(tmp_path / "six.data", 6, bad=2)
    few = load_ratings(path, format="movielens-100k", progress=False)
    with pytest.raises(DataError) as refused:
        check_trainable(few)
    assert refused.value.detail == (
        f"{path} has 6 usable reviews (2 rows skipped); training needs at least {MIN_TRAINING_ROWS} (a validation "
        "and a test review besides the training ones): use a larger file"
    )


def test_training_refuses_too_little_data_before_any_component_trains(tmp_path):
    from chorus.shared.artifacts import ArtifactStore
    from chorus.shared.contract.errors import DataError
    from chorus.training.train import train

    lines: list[str] = []
    with pytest.raises(DataError, match="has 6 usable reviews"):
        train(
            _movielens(tmp_path / "six.data", 6),
            tmp_path / "art",
            ["similarity", "rating"],
            progress=False,
            log=lines.append,
        )
    assert len(lines) == 1 and lines[0].startswith("loaded 6 reviews")  # nothing trained, nothing published
    assert ArtifactStore(tmp_path / "art").current() is None

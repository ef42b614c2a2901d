"""Review text: features against hand-made examples, the course baselines' definitions, the served scorer against
scikit-learn, the text tasks' errors, and the rating service's POST /v1/reviews/score over a tiny artifact."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from chorus.services.rating.app import create_app
from chorus.services.rating.settings import Settings
from chorus.services.rating.text.features import TfidfVocabulary, analyze, course_words, review_length
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.contract.errors import DataError
from chorus.shared.data import load_ratings
from chorus.shared.data.component import load_data_component
from chorus.training.text.fit import (
    RIDGE_ALPHA,
    TEXT_RATING_STEPS,
    VERIFIED_C,
    VERIFIED_STEPS,
    VOCABULARY_STEPS,
    classification_metrics,
    common_words,
    course_verified_features,
    evaluate_text_rating,
    evaluate_verified,
    fit_course_verified,
    fit_scorer,
    scorer_steps,
    vectorizer,
    vocabulary_of,
    word_counts,
)
from tests.conftest import train_tiny

TEXTS = [
    "Great strings! Great tone, and they don't buzz.",
    "Broke after a week -- returned it.",
    "great value; the tone is bright",
    "Ça marche très bien, great",
]


def test_course_words_lowercase_strip_punctuation_split_on_space():
    assert course_words("Great strings! They DON'T buzz -- 10/10.") == [
        "great",
        "strings",
        "they",
        "dont",
        "buzz",
        "1010",
    ]
    assert course_words("  \n") == []


def test_analyze_gives_tokens_then_adjacent_pairs():
    assert analyze("A great, GREAT tone") == ["great", "great", "tone", "great great", "great tone"]
    assert analyze("one") == ["one"] and analyze("I am", ngrams=1) == ["am"]


def test_review_length_counts_characters_not_bytes():
    assert review_length(["ça", "", "abc"]).tolist() == [2.0, 0.0, 3.0]


def test_common_words_and_counts_follow_the_course():
    words = common_words(TEXTS, k=3)
    counts = Counter(w for t in TEXTS for w in course_words(t))
    assert words == [w for w, _ in counts.most_common(3)] and words[0] == "great"
    table = word_counts(["great great tone", "Tone!"], ["great", "tone", "missing"])
    assert table.tolist() == [[2, 1, 0], [0, 1, 0]]


def test_course_verified_features_are_length_in_characters_and_rating():
    x = course_verified_features(["abcd", "ça"], np.array([5.0, 1.0]))
    assert x.tolist() == [[4.0, 5.0], [2.0, 1.0]]
    y = np.array([True, True, True, False, False, True])
    clf = fit_course_verified(np.column_stack([np.arange(6.0), np.ones(6)]), y)
    assert isinstance(clf, LogisticRegression) and clf.C == 1.0 and clf.class_weight is None


def test_balanced_error_rate_by_hand():
    truth = np.array([True, True, True, True, False, False])
    predicted = np.array([True, True, True, False, True, False])  # TPR 3/4, TNR 1/2
    m = classification_metrics(predicted, truth)
    assert m == pytest.approx({"ber": 1 - (0.75 + 0.5) / 2, "accuracy": 4 / 6, "tpr": 0.75, "tnr": 0.5})
    everyone = classification_metrics(np.ones(6, bool), truth)
    assert everyone["ber"] == 0.5 and everyone["tnr"] == 0.0


def test_served_tfidf_equals_scikit_learn():
    vec = vectorizer().set_params(min_df=1).fit(TEXTS)
    vocab = vocabulary_of(vec)
    expected = vec.transform(TEXTS + ["great unknownword tone tone"]).toarray()
    for k, text in enumerate(TEXTS + ["great unknownword tone tone"]):
        cols, values = vocab.transform_one(text)
        row = np.zeros(len(vocab.terms))
        row[cols] = values
        np.testing.assert_allclose(row, expected[k], rtol=1e-6, atol=1e-7)
    cols, values = vocab.transform_one("zzz qqq")
    assert cols.size == 0 and values.size == 0


def test_the_vocabulary_must_fit_its_idf():
    with pytest.raises(ValueError, match="same length"):
        TfidfVocabulary(np.array(["a", "b"]), np.ones(3))


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    from chorus.shared.data.synthetic import generate_reviews

    return generate_reviews(tmp_path_factory.mktemp("text") / "reviews.tsv", 3000, seed=5, progress=False)


def test_text_rating_recovers_the_planted_rating(data_file):
    # the generator's praise and complaints follow the rating, with noise: both models find much of it, the TF-IDF
    # ridge (phrases such as "stayed in tune") more than the counts of common words
    ratings = load_ratings(data_file, with_text=True, progress=False)
    seen: list[int] = []
    result = evaluate_text_rating(ratings, seed=0, progress=seen.append)
    assert seen == list(range(1, TEXT_RATING_STEPS + 1))  # the progress count: every step once, the exact total
    assert result["task"] == "text-rating" and set(result["models"]) == {"baseline", "text"}
    variance = float(np.var(ratings.rating))
    assert result["models"]["text"]["mse"] < 0.6 * variance
    assert result["models"]["text"]["mse"] < result["models"]["baseline"]["mse"] < variance
    assert result["split"] == {"train": 2400, "validation": 300, "test": 300, "seed": 0}
    json.dumps(result)


def test_verified_reports_both_models(data_file):
    ratings = load_ratings(data_file, with_text=True, progress=False)
    seen: list[int] = []
    result = evaluate_verified(ratings, seed=0, progress=seen.append)
    assert seen == list(range(1, VERIFIED_STEPS + 1))
    plain = evaluate_verified(ratings, seed=0)
    assert {k: v for k, v in plain.items() if k != "seconds"} == {k: v for k, v in result.items() if k != "seconds"}
    for model in ("baseline", "text"):
        assert set(result["models"][model]) == {"ber", "accuracy", "tpr", "tnr"}
        assert 0 <= result["models"][model]["ber"] <= 1
    assert result["selected"] in result["models"] and 0.85 < result["verified_fraction"] < 0.95


@pytest.mark.parametrize("verified", [True, False])
def test_the_scorer_counts_every_step_up_to_the_exact_total_and_fits_the_same(data_file, verified):
    ratings = load_ratings(data_file, with_text=True, progress=False)
    if not verified:
        ratings = replace(ratings, verified=None)
    rows = np.arange(0, ratings.n, 2)
    total = scorer_steps(ratings, rows, seed=1)
    # the vocabulary in tenths, every α, the refit, two halves; then every C and its refit where there are flags
    assert total == VOCABULARY_STEPS + len(RIDGE_ALPHA) + 3 + (len(VERIFIED_C) + 1 if verified else 0)
    seen: list[int] = []
    scorer, info = fit_scorer(ratings, rows, seed=1, progress=seen.append)
    assert seen == list(range(1, total + 1))
    plain, plain_info = fit_scorer(ratings, rows, seed=1)
    assert plain_info == info and ("C" in info) == verified
    np.testing.assert_array_equal(plain.rating_coef, scorer.rating_coef)
    np.testing.assert_array_equal(plain.item_offset, scorer.item_offset)
    np.testing.assert_array_equal(plain.vocabulary.terms, scorer.vocabulary.terms)


def test_no_verified_field_or_no_text_is_an_error_naming_it(tmp_path):
    path = tmp_path / "reviews.json"
    rows = [
        {"reviewerID": f"U{k}", "asin": "X", "overall": 5, "unixReviewTime": 1, "reviewText": "ok"} for k in range(20)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match="no verified-purchase field .*verified_purchase in Amazon TSV"):
        evaluate_verified(load_ratings(path, with_text=True, progress=False))
    with pytest.raises(DataError, match="no review text"):
        evaluate_text_rating(load_ratings(path, with_text=False, progress=False))


# --- the served scorer ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("text-artifacts"), 3000, 4, ["rating", "text"])


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as c:
        yield c


def test_score_predicts_the_planted_rating_with_its_terms(client, root):
    version = ArtifactStore(root).open(components=["data", "text"])
    assert "text" in version.components
    good = client.post(
        "/v1/reviews/score", json={"text": "Excellent\nWorks great, sounds amazing, highly recommend it."}
    )
    bad = client.post("/v1/reviews/score", json={"text": "Junk\nBroke after a week, waste of money.", "rating": 1})
    assert good.status_code == 200 and bad.status_code == 200, (good.text, bad.text)
    g, b = good.json(), bad.json()
    assert g["predicted_rating"] > 4 > 2.5 > b["predicted_rating"] >= 1
    assert 0 <= g["verified_probability"] <= 1 and g["item_known"] is None
    weights = [t["weight"] for t in b["top_terms"]]
    assert weights and all(abs(a) >= abs(c) for a, c in zip(weights, weights[1:], strict=False))
    assert any(t["term"] in {"broke", "junk", "waste", "waste of"} and t["weight"] < 0 for t in b["top_terms"])


def test_score_with_an_item(client, root):
    ratings = load_data_component(ArtifactStore(root).open(components=["data"]))
    item = str(ratings.item_ids[0])
    r = client.post("/v1/reviews/score", json={"text": "decent okay", "item_id": item})
    assert r.status_code == 200 and r.json()["item_known"] is True
    r = client.post("/v1/reviews/score", json={"text": "decent okay", "item_id": "no-such-item"})
    assert r.status_code == 200 and r.json()["item_known"] is False


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (json.dumps({"text": ""}).encode(), "text: String should have at least 1 character"),
        (json.dumps({"text": " \x00\x1c"}).encode(), "text: empty"),
        (json.dumps({"text": "x" * 20_001}).encode(), "text: String should have at most 20000 characters"),
        (b'{"text": "\xff\xfe"}', "not valid UTF-8"),
        (json.dumps({"text": "fine", "rating": 9}).encode(), "rating: Input should be less than or equal to 5"),
    ],
)
def test_score_limits(client, content, needle):
    r = client.post("/v1/reviews/score", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422 and needle in r.json()["detail"], r.text


def test_a_version_without_text_answers_404(tmp_path_factory):
    root = train_tiny(tmp_path_factory.mktemp("no-text"), 1500, 2, ["rating"])
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as c:
        r = c.post("/v1/reviews/score", json={"text": "great"})
    assert r.status_code == 404 and "no review-text model" in r.json()["detail"]

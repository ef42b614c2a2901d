"""`chorus evaluate --task verified|text-rating` and the text parts of `chorus train`, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chorus.cli import main
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.train import COMPONENTS, train


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return generate_reviews(tmp_path_factory.mktemp("text-cli") / "reviews.tsv", 2000, seed=6, progress=False)


@pytest.mark.parametrize(
    ("task", "keys"), [("verified", {"ber", "accuracy", "tpr", "tnr"}), ("text-rating", {"mse", "rmse", "mae"})]
)
def test_evaluate_text_tasks_json(reviews, capsys, task, keys):
    assert main(["evaluate", "--data", str(reviews), "--task", task, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == task and set(result["models"]) == {"baseline", "text"}
    assert all(set(m) == keys for m in result["models"].values())
    assert result["selected"] in result["models"] and result["seconds"] > 0


def test_evaluate_text_task_table(reviews, capsys):
    assert main(["evaluate", "--data", str(reviews), "--task", "text-rating"]) == 0
    out = capsys.readouterr().out
    assert "text-rating: seeded 80/10/10 split" in out and "baseline" in out and "selected on validation" in out


def test_verified_without_the_field_is_an_error(tmp_path, capsys):
    path = tmp_path / "reviews.json"
    rows = [
        {"reviewerID": f"U{k}", "asin": "X", "overall": 4, "unixReviewTime": 1, "reviewText": "fine"} for k in range(30)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["evaluate", "--data", str(path), "--task", "verified"]) == 1
    err = capsys.readouterr().err
    assert "chorus: error:" in err and "no verified-purchase field" in err


def test_rating_only_options_are_refused_for_text_tasks(reviews, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--data", str(reviews), "--task", "verified", "--protocol", "kfold"])
    assert exc.value.code == 2 and "--protocol only applies to --task rating" in capsys.readouterr().err


def test_movielens_skips_the_text_models_with_one_line_and_publishes_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    lines = [
        f"{u}\t{i}\t{rng.integers(1, 6)}\t{880000000 + k}"
        for k, (u, i) in enumerate({(int(u), int(i)) for u, i in rng.integers(1, 60, (900, 2))})
    ]
    data = tmp_path / "u.data"
    data.write_text("\n".join(lines) + "\n")
    log: list[str] = []
    version = train(data, tmp_path / "artifacts", ["rating", "text"], progress=False, log=log.append)
    assert [m for m in log if m.startswith("skipped")] == ["skipped text: movielens-100k data has no review text"]
    assert not [m for m in log if m.startswith("trained text")] and any(m.startswith("trained rating") for m in log)
    opened = ArtifactStore(tmp_path / "artifacts").open(version)
    assert "rating" in opened.components and "text" not in opened.components
    assert "text" in COMPONENTS


def test_train_publishes_the_text_component(reviews, tmp_path):
    log: list[str] = []
    version = train(reviews, tmp_path / "artifacts", ["rating", "text"], progress=False, log=log.append)
    opened = ArtifactStore(tmp_path / "artifacts").open(version)
    assert "text" in opened.components and any(m.startswith("trained text") for m in log)
    meta = opened.component_meta("text")
    assert meta["metrics"]["rating_validation_mse"] >= 0 and "verified_validation_ber" in meta["metrics"]
    assert "text_aware" in opened.component_meta("rating")["hyperparameters"]

"""`chorus evaluate --task ranking` and the ranking component of `chorus train`, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chorus.cli import main
from chorus.services.rating.rankers.persistence import load_rankers
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.data.component import load_data_component
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.ranking import fit as ranking_fit
from chorus.training.train import COMPONENTS, parse_components, train
from tests.cli.test_cli import chorus


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return generate_reviews(tmp_path_factory.mktemp("ranking-cli") / "reviews.tsv", 3000, seed=5, progress=False)


@pytest.fixture
def short_grids(monkeypatch):
    """In-process runs try only the first point of every ranker's grid (the full grids are for real data)."""
    for kind, grid in list(ranking_fit.GRIDS.items()):
        monkeypatch.setitem(ranking_fit.GRIDS, kind, grid[:1])


def test_evaluate_ranking_json(reviews, capsys, short_grids):
    assert main(["evaluate", "--data", str(reviews), "--task", "ranking", "--k", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["task"], result["k"], result["relevance"], result["seed"]) == ("ranking", 5, "any", 0)
    assert set(result["models"]) <= set(ranking_fit.FITTERS) and "popular" in result["models"]
    assert result["selected"] in result["models"] and result["seconds"] > 0
    for m in result["models"].values():
        assert set(m) >= {"precision", "recall", "ndcg", "map", "coverage", "novelty", "fit_seconds"}
        assert 0 < m["ndcg"] <= 1 and 0 < m["coverage"] <= 1 and m["novelty"] > 0


def test_evaluate_ranking_table_has_one_row_per_model(reviews, capsys, short_grids):
    assert main(["evaluate", "--data", str(reviews), "--task", "ranking", "--relevance", "min_rating=4"]) == 0
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "relevance min_rating=4" in out
    rows = [
        line for line in out.splitlines() if line[:1] in ("*", " ") and line[1:].split(" ")[0] in ranking_fit.FITTERS
    ]
    assert len(rows) >= 1 and sum(line.startswith("*") for line in rows) == 1


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``chorus evaluate`` in process; assert it is a usage error (exit 2) and return its stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_evaluate_ranking_usage_errors_name_the_value(reviews, capsys):
    data = ["--data", str(reviews)]
    assert "'min_rating=high'" in usage_error(capsys, *data, "--task", "ranking", "--relevance", "min_rating=high")
    assert "'liked'" in usage_error(capsys, *data, "--task", "ranking", "--relevance", "liked")
    err = usage_error(capsys, *data, "--task", "ranking", "--k", "0")
    assert "argument --k" in err and "got 0" in err
    assert "'ten'" in usage_error(capsys, *data, "--task", "ranking", "--k", "ten")
    err = usage_error(capsys, *data, "--task", "ranking", "--protocol", "kfold")
    assert "--protocol only applies to --task rating" in err
    assert "--k only applies to --task ranking" in usage_error(capsys, *data, "--k", "5")
    assert "'similar'" in usage_error(capsys, *data, "--task", "similar")
    # the same as a user sees it, through a real process
    proc = chorus("evaluate", *data, "--task", "ranking", "--relevance", "min_rating=high")
    assert proc.returncode == 2 and "chorus evaluate: error: argument --relevance" in proc.stderr


def test_train_help_and_parsing_name_every_component():
    proc = chorus("train", "--help")
    assert proc.returncode == 0 and "similarity,rating,ranking,text" in proc.stdout
    assert list(COMPONENTS) == ["similarity", "rating", "ranking", "text"]
    assert parse_components(None) == ["similarity", "rating", "ranking", "text"]
    assert parse_components(" ranking, rating ") == ["ranking", "rating"]


def test_train_builds_the_ranking_component_and_reuses_it(reviews, tmp_path, short_grids):
    root = tmp_path / "art"
    lines: list[str] = []
    first = train(reviews, root, parse_components(None), progress=False, log=lines.append)
    assert any(line.startswith("trained ranking in") for line in lines)
    version = ArtifactStore(root).open(first)
    assert {"similarity", "rating", "ranking"} <= set(version.components)
    rankers, default = load_rankers(version)
    assert default in rankers and "popular" in rankers
    kinds = version.component_meta("ranking")["metrics"]["kinds"]
    assert default == max(kinds, key=lambda k: kinds[k]["validation"]["ndcg"])
    data = load_data_component(version)
    for ranker in rankers.values():  # refitted on every row, not the selection's fit rows
        assert np.array_equal(ranker.item_count, np.bincount(data.item, minlength=data.n_items))
    # retraining one component keeps the others, ranking included, from the same data file
    lines.clear()
    second = train(reviews, root, ["rating"], seed=1, progress=False, log=lines.append)
    assert any(line.startswith("kept ranking from version") for line in lines)
    again, default_again = load_rankers(ArtifactStore(root).open(second))
    assert default_again == default
    assert all(np.array_equal(again[k].item_count, rankers[k].item_count) for k in rankers)

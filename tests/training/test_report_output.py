"""Output for people (chorus.training.say): aligned tables, values in words, the chosen model in a sentence."""

from __future__ import annotations

import math

from chorus.training.say import choice, describe, plain, table, trained


def test_a_table_aligns_every_column_and_writes_missing_figures_as_na():
    text = table(["model", "RMSE", "n"], [["mean", 1.1234567, 1000], ["latent factors", math.nan, None]])
    lines = text.splitlines()
    assert lines[1] == "mean" + " " * 12 + "1.1235  1,000"
    assert lines[2] == "latent factors" + " " * 5 + "n/a" + " " * 4 + "n/a"
    assert len({len(line) for line in lines}) == 1  # right-aligned columns end at the same place


def test_values_read_as_words_never_as_reprs():
    assert plain({"pairs": 1200, "kinds": ["ease", "ials"], "limit": None, "share": 0.123456}) == (
        "pairs 1,200, kinds ease and ials, limit none, share 0.1235"
    )
    assert plain([]) == "none" and plain({}) == "none"


def test_the_choice_names_the_winner_with_its_hyperparameters_then_the_others():
    line = choice("Ranking", "ease", {"lam": 500.0}, "validation NDCG@10", {"popular": 0.2011, "ease": 0.4431})
    assert line == "Ranking: EASE (λ=500) chosen, validation NDCG@10 0.4431 (popular 0.2011)"


def test_every_component_summary_reads_as_a_sentence_and_an_unknown_shape_still_does():
    summary = {
        "default": "ials",
        "validation_ndcg": {"popular": 0.1, "ials": 0.3},
        "params": {"ials": {"factors": 32, "alpha": 2.0}},
        "skipped": {"ease": "more than 10,000 items"},
        "seconds": 3.2,
    }
    assert trained("ranking", 3.25, summary) == [
        "trained ranking in 3.2 s: iALS (factors=32, α=2) chosen, validation NDCG@10 0.3000 (popular 0.1000).",
        "Ranker EASE skipped: more than 10,000 items.",
    ]
    odd = describe("ranking", {"chosen": {"a": 1}, "seconds": 2})
    assert odd == ["chosen a 1."] and "{" not in odd[0]
    assert describe("newcomer", {"rows": 5}) == ["rows 5."]

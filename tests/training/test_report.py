"""The evaluation report: one self-contained HTML file whose plots are inline SVG, with no URL in it, whose curves
agree with the evaluation's table, and whose bytes depend only on the figures."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from chorus.shared.data import load_ratings
from chorus.shared.data.synthetic import generate_reviews
from chorus.training.evaluate import evaluate, ranking
from chorus.training.report import (
    K_MAX,
    _groups,
    evaluation_ranking_figures,
    evaluation_report,
    render,
    write,
)
from chorus.training.say import label


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = generate_reviews(tmp_path_factory.mktemp("report") / "reviews.tsv", 4000, seed=5, progress=False)
    return load_ratings(path, progress=False)


@pytest.fixture(scope="module")
def ranking_result(small):
    return ranking(small, k=5, seed=1)


@pytest.fixture(scope="module")
def rating_result(small):
    return evaluate(small, protocol="kfold", folds=3, seed=1, with_similarity=False, workers=1)


class Tags(HTMLParser):
    """Every start tag and attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_report_is_one_offline_file_with_every_plot(small, ranking_result, rating_result, tmp_path):
    page = evaluation_report(small, "reviews.tsv", {"ranking": ranking_result, "rating": rating_result}, progress=False)
    path = write(tmp_path / "report.html", page)
    text = path.read_text(encoding="utf-8")
    assert text == page and not list(tmp_path.glob(".*tmp*"))  # written whole, nothing left beside it
    # the long tail of the data, NDCG and recall curves, coverage and novelty, the lists' long tail, rating error
    assert text.count("<svg") == 6 and text.count("</svg>") == 6
    assert (
        "http://" not in text and "https://" not in text and "//" not in re.sub(r"<svg.*?</svg>", "", text, flags=re.S)
    )
    tags = Tags()
    tags.feed(text)
    for tag, attrs in tags.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed"), tag
        for name, value in attrs.items():
            if name in ("href", "src", "xlink:href"):
                assert value is not None and value.startswith("#"), (tag, name, value)
    for heading in ("Data", "Ranking", "Rating"):
        assert f"<h2>{heading}</h2>" in text
    # every ranker and every rating model is named; the per-fold table has a row per model and fold plus the means
    for kind in ("popular", "item-kNN", "EASE", "iALS"):
        assert kind in text
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+|mean)</td><td>\d", text)
    assert len(rows) == len(rating_result["models"]) * 4


def test_the_curves_pass_through_the_tables_figures(small, ranking_result):
    figures = evaluation_ranking_figures(small, ranking_result)
    k = ranking_result["k"]
    assert figures["ks"][-1] == K_MAX and k in figures["ks"] and figures["ks"] == sorted(figures["ks"])
    at = figures["ks"].index(k)
    for kind, m in ranking_result["models"].items():
        curve = figures["models"][kind]
        assert curve["at_k"] == pytest.approx({c: v for c, v in m.items() if c != "fit_seconds"}, abs=1e-12)
        assert curve["ndcg"][at] == pytest.approx(m["ndcg"], abs=1e-9)
        assert curve["recall"][at] == pytest.approx(m["recall"], abs=1e-9)
        # recall never falls as the list grows; the top-k lists fill k slots for every scored user
        assert np.all(np.diff(curve["recall"]) >= -1e-12)
        assert sum(curve["slots"]) == k * figures["users"]
        # coverage as the evaluation measured it: distinct listed items over items with a training review
        listed = np.count_nonzero(curve["slots"])
        assert listed / np.count_nonzero(figures["item_counts"]) == pytest.approx(m["coverage"])


def test_the_same_figures_give_the_same_bytes(small, rating_result):
    stats = {"reviews": small.n, "users": small.n_users, "items": small.n_items}
    counts = np.bincount(small.item, minlength=small.n_items)
    folds = (rating_result["per_fold"], "three folds")
    first = render("x", stats, counts, rating=folds)
    assert first == render("x", stats, counts, rating=folds)
    assert first.count("<svg") == 2 and "<h2>Ranking</h2>" not in first


def test_names_from_the_data_are_escaped(small):
    stats = {"reviews": small.n, "users": small.n_users, "items": small.n_items}
    page = render("<script>alert(1)</script>", stats, np.bincount(small.item))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_train_puts_the_report_into_the_version_and_the_rating_service_serves_it(tmp_path):
    from fastapi.testclient import TestClient

    from chorus.services.rating.app import create_app
    from chorus.services.rating.settings import Settings
    from chorus.shared.artifacts import ArtifactStore
    from chorus.shared.report_component import load_report
    from chorus.training.train import train

    data = generate_reviews(tmp_path / "reviews.tsv", 3000, seed=4, progress=False)
    root = tmp_path / "artifacts"
    said: list[str] = []
    first = train(data, root, ["rating", "ranking"], progress=False, log=said.append)
    version = ArtifactStore(root).open(first)  # every file checked against the manifest, the report's too
    page = load_report(version)
    assert page is not None
    text = page.decode("utf-8")
    assert text.count("<svg") == 6 and "http://" not in text and "https://" not in text
    # the version's ranking figures are what chorus evaluate measures with the same seed: the same selection,
    # refitted on the same training rows, scored on the same test rows
    metrics = version.component_meta("ranking")["metrics"]
    evaluated = ranking(load_ratings(data, progress=False), seed=0)
    assert evaluated["params"] == {kind: s["params"] for kind, s in metrics["kinds"].items()}
    for kind, m in evaluated["models"].items():
        row = re.search(
            rf"<tr><td>{re.escape(label(kind))}( \(chosen\))?</td>((<td( class=\"words\")?>[^<]*</td>)+)</tr>", text
        )
        assert row, kind
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(2))
        assert cells[:6] == [f"{m[c]:.4f}" for c in ("precision", "recall", "ndcg", "map", "coverage", "novelty")]
        assert cells[6] == f"{metrics['kinds'][kind]['validation']['ndcg']:.4f}"
        assert bool(row.group(1)) == (kind == metrics["default"])
    assert "with its evaluation report" in said[-1]
    # retraining one component writes a new report (never the previous version's), kept components included
    second = train(data, root, ["rating"], seed=1, progress=False, log=said.append)
    again = ArtifactStore(root).open(second)
    assert "adopted_from" not in again.component_meta("report")
    assert "<h2>Ranking</h2>" in (load_report(again) or b"").decode()
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as client:
        answer = client.get("/v1/report")
        assert answer.status_code == 200 and answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.content == load_report(again) and answer.headers["x-model-version"] == second


def test_a_version_without_a_report_answers_404_with_a_reason(tmp_path):
    from fastapi.testclient import TestClient

    from chorus.services.rating.app import create_app
    from chorus.services.rating.settings import Settings
    from chorus.shared.artifacts import ArtifactStore, VersionWriter
    from tests.conftest import train_tiny

    root = train_tiny(tmp_path / "artifacts", 1500, 2, ["rating"])
    previous = ArtifactStore(root).open()
    with VersionWriter(root) as writer:  # the same version less its report
        writer.set_dataset(previous.manifest["dataset"]["fingerprint"], previous.manifest["dataset"]["stats"])
        for component in ("data", "rating"):
            writer.adopt_component(previous, component)
        name = writer.commit()
    with TestClient(create_app(Settings(artifacts=root, reload_interval=3600))) as client:
        answer = client.get("/v1/report")
        assert answer.status_code == 404 and answer.json()["type"] == "not_found"
        assert f"version {name} has no evaluation report" in answer.json()["detail"]


def test_a_plot_does_not_grow_with_the_catalogue(small):
    stats = {"reviews": small.n, "users": small.n_users, "items": small.n_items}
    few = render("x", stats, np.arange(1, 601))
    many = render("x", stats, np.arange(1, 200_001))
    assert len(many) < 1.5 * len(few)


def test_a_blend_is_fitted_with_its_parts_only_where_it_was_chosen_with_their_params():
    ease, ials = {"lam": 300.0, "dropout": 0.5, "input": "binary"}, {"factors": 32, "alpha": 0.5, "values": "rating"}
    chosen = {"popular": {}, "ease": ease, "ials": ials, "item_knn": {}, "ease_ials": {**ease, **ials, "w": 0.5}}
    groups = _groups(chosen)
    assert groups[0] == ("ease", "ials", "ease_ials") and sorted(groups[1:]) == [("item_knn",), ("popular",)]
    other = {**chosen, "ease_ials": {**ease, **ials, "lam": 100.0, "w": 0.5}}
    assert sorted(_groups(other)) == sorted((kind,) for kind in other)

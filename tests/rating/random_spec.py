"""The spec line of the toy ``random`` ranker (``tests/rating/random_ranker.py``), and what that one line must give.

Loaded as a pytest plugin (``python -m pytest -p tests.rating.random_spec ...``, as
``tests/rating/test_kinds.py`` runs it in a fresh interpreter), this module adds the line to the spec table before
any module derives anything from the table, which is what writing it into ``chorus/shared/contract/kinds.py``
does. The tests below, run in that interpreter with the contract and the rating service's tests (whose artifact
holds every registered ranker, so ``method=random`` is asked of the service), then find the kind in every
registry, enum and list; none of them adds it anywhere.
"""

from __future__ import annotations

from typing import get_args

from chorus.shared.contract import kinds

RANDOM = kinds.KindSpec(
    "random",
    "ranker",
    "a seeded random weight per item, the same for every history",
    model="tests.rating.random_ranker:RandomRanker",
    fitter="tests.rating.random_ranker:fit_random",
    grid=({"seed": 0}, {"seed": 1}),
)

if kinds.RANKERS[-1] is not RANDOM:  # the line, once, at the end of the table
    kinds.RANKERS = (*kinds.RANKERS, RANDOM)


def test_random_is_in_every_registry_enum_and_list():
    from chorus.services.rating.rankers import REGISTRY
    from chorus.shared.contract.names import Method, Ranking
    from chorus.shared.contract.params import MethodQuery
    from chorus.shared.contract.schemas import BasketRequest
    from chorus.training.ranking.fit import FITTERS, GRIDS
    from tests.rating.random_ranker import RandomRanker, fit_random

    assert REGISTRY["random"] is RandomRanker and list(REGISTRY)[-1] == "random"
    assert FITTERS["random"] is fit_random and GRIDS["random"] == [{"seed": 0}, {"seed": 1}]
    assert Ranking("random").value == Method("random").value == "random"
    assert [m.value for m in Ranking] == sorted(
        ["ease", "ease_ials", "ials", "item_knn", "popular", "random", "rp3beta"]
    )
    assert [m.value for m in Method][-3:] == ["latent", "similar", "model"]
    assert get_args(MethodQuery)[1].description.startswith(
        "ease, ease_ials, ials, item_knn, popular, random, rp3beta: a ranker"
    )
    assert "random" in (BasketRequest.model_fields["method"].description or "")


def test_random_is_selected_saved_and_loaded_through_the_one_loader(tmp_path, monkeypatch):
    import numpy as np

    from chorus.services.rating.rankers.persistence import load_rankers
    from chorus.shared.artifacts import ArtifactStore, VersionWriter
    from chorus.shared.data import load_ratings
    from chorus.shared.data.synthetic import generate_reviews
    from chorus.training.ranking import train
    from chorus.training.ranking.fit import GRIDS
    from tests.rating.random_ranker import RandomRanker

    r = load_ratings(generate_reviews(tmp_path / "reviews.tsv", 2000, seed=1, progress=False), progress=False)
    selection = train.select(r.user, r.item, r.rating, r.n_users, r.n_items, k=5, kinds=["random", "popular"])
    assert list(selection.kinds) == ["popular", "random"]  # the table's order, whatever order was asked for
    assert [p["params"] for p in selection.kinds["random"].points] == GRIDS["random"]
    for kind, grid in list(GRIDS.items()):
        monkeypatch.setitem(GRIDS, kind, grid[:1])  # a quick component: one point of each kind
    with VersionWriter(tmp_path / "art") as writer:
        train.train_component(r, writer, seed=0, progress=False)
        writer.commit()
    rankers, _ = load_rankers(ArtifactStore(tmp_path / "art").open(components=["ranking"]))
    fitted = rankers["random"]
    assert isinstance(fitted, RandomRanker)
    assert fitted.params == {"seed": 0} and fitted.weights.shape == (r.n_items,)
    assert np.array_equal(fitted.item_count, np.bincount(r.item, minlength=r.n_items))

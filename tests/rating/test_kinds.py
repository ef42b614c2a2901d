"""The spec table of model kinds: what is derived from it (registries, the selection's fitters and grids, the API's
enums and text, the table of kinds in ``docs/models.md``), that the wire contract reads it without numpy, and that
a ranker added by the recipe (one module, one spec line) runs everywhere."""

from __future__ import annotations

import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import get_args

import pytest

from chorus.shared.contract import kinds, names
from chorus.shared.contract.kinds import RANKERS, RATING_MODELS, KindSpec, find, ranker_methods
from chorus.shared.contract.names import Method, Ranking
from chorus.shared.contract.params import MethodQuery
from chorus.shared.contract.schemas import BasketRequest
from tests.rating.ranker_contract import RankerContract

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_unique_and_each_table_holds_one_family():
    every = [spec.name for spec in (*RATING_MODELS, *RANKERS)]
    assert len(set(every)) == len(every)
    assert {spec.family for spec in RATING_MODELS} == {"rating"} and {spec.family for spec in RANKERS} == {"ranker"}
    assert find(RANKERS, "ease").model.endswith(":EaseRanker")
    with pytest.raises(KeyError, match="no model kind 'nope'"):
        find(RANKERS, "nope")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Ease"}, "lower-case identifier"),
        ({"name": "a__b"}, "without '__'"),
        ({"name": "two words"}, "lower-case identifier"),
        ({"family": "ranking"}, "family must be"),
        ({"model": "no.colon.Class"}, "not a 'module:attribute' path"),
        ({"fitter": None}, "needs a fitter and a grid"),
        ({"grid": ()}, "needs a fitter and a grid"),
    ],
)
def test_a_malformed_spec_is_refused(fields, message):
    good = {"name": "toy", "family": "ranker", "description": "a toy", "model": "m:C", "fitter": "m:f", "grid": ({},)}
    with pytest.raises(ValueError, match=message):
        KindSpec(**(good | fields))


def test_the_api_enums_and_texts_are_the_served_rankers():
    served = sorted(spec.name for spec in RANKERS if spec.served)
    assert list(ranker_methods()) == served
    assert [m.value for m in Ranking] == served and [m.name for m in Ranking] == served
    assert [m.value for m in Method] == [*served, "latent", "similar", "model"]
    assert Method.similar is Method("similar") and names.canonical_method(Method.model) is Method.latent
    assert Method.__module__ == "chorus.shared.contract.names" and "``latent``" in (Method.__doc__ or "")
    assert get_args(MethodQuery)[1].description.startswith(f"{', '.join(served)}: a ranker of the served version")
    assert f"a ranker ({', '.join(served)});" in (BasketRequest.model_fields["method"].description or "")
    unserved = [spec.name for spec in RANKERS if not spec.served]
    assert not set(unserved) & {m.value for m in Method}


def test_an_unserved_ranker_is_no_method(monkeypatch):
    hidden = KindSpec("hidden", "ranker", "measured only", model="m:C", fitter="m:f", grid=({},), served=False)
    monkeypatch.setattr(kinds, "RANKERS", (*RANKERS, hidden))
    assert "hidden" not in ranker_methods() and "ease" in ranker_methods()


def test_a_ranker_named_like_another_method_is_refused(monkeypatch):
    class Demo(StrEnum):
        latent = "latent"

    clash = KindSpec("latent", "ranker", "a clash", model="m:C", fitter="m:f", grid=({},))
    monkeypatch.setattr(kinds, "RANKERS", (*RANKERS, clash))
    with pytest.raises(ValueError, match="ranker kind 'latent' is already a Demo"):
        names._after_rankers(Demo)


def test_the_gateway_and_the_contract_import_no_numpy_and_no_model_code():
    code = (
        "import sys, chorus.shared.contract.kinds, chorus.services.gateway.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy')"
        " or m.startswith(('chorus.services.rating', 'chorus.training', 'chorus.shared.data', 'tests'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def kinds_table() -> list[str]:
    """The table of kinds ``docs/models.md`` holds, rendered from the spec table."""
    rows = ["| kind | family | served | trainer | what it computes |", "| --- | --- | --- | --- | --- |"]
    for spec in (*RATING_MODELS, *RANKERS):
        trainer = f"`{spec.fitter}`" if spec.fitter else "the rating selection (`chorus.training.rating.train`)"
        served = "yes" if spec.served else "no"
        rows.append(f"| `{spec.name}` | {spec.family} | {served} | {trainer} | {spec.description} |")
    return rows


def table_after(lines: list[str], heading: str) -> list[str]:
    """The lines of the first table after ``heading`` in ``lines``."""
    assert heading in lines, f"docs/models.md has no section {heading!r}"
    start = next(i for i in range(lines.index(heading), len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_docs_list_every_kind_as_the_spec_table_does():
    lines = (ROOT / "docs" / "models.md").read_text(encoding="utf-8").splitlines()
    want = kinds_table()
    table = "\n".join(want)
    assert table_after(lines, "## Model kinds") == want, f"docs/models.md, 'Model kinds', should read:\n{table}"
    formulas = table_after(lines, "## Ranking (the `rating` service's rankers)")[2:]
    assert [row.split("`")[1] for row in formulas] == [spec.name for spec in RANKERS]


@pytest.mark.slow
def test_a_ranker_added_by_the_recipe_runs_everywhere():
    """``tests/rating/random_ranker.py`` (the module) and ``tests/rating/random_spec.py`` (the spec line, loaded
    before anything derives from the table): in that interpreter the toy kind passes the ranker contract, is
    registered, a method of the API, selected, written, loaded by the one loader and served by the rating
    service."""
    args = [
        *("-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "tests.rating.random_spec"),
        *("tests/rating/random_spec.py", "tests/rating/test_rankers.py::TestEveryRanker"),
        *("tests/rating/test_service_rankers.py", "-k", "random or every_method or every_ranker_kind"),
    ]
    run = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=280)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    passed = {line.removeprefix("PASSED ") for line in run.stdout.splitlines() if line.startswith("PASSED ")}
    contract = [name for name in dir(RankerContract) if name.startswith("test_")]
    assert {f"tests/rating/test_rankers.py::TestEveryRanker::{test}[random-0]" for test in contract} <= passed
    assert {
        "tests/rating/random_spec.py::test_random_is_in_every_registry_enum_and_list",
        "tests/rating/random_spec.py::test_random_is_selected_saved_and_loaded_through_the_one_loader",
        "tests/rating/test_service_rankers.py::test_every_method_ranks_unreviewed_items[0]",
    } <= passed

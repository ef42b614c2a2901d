"""The `chorus` command as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from chorus.training.evaluate import RANKING_COLUMNS
from chorus.training.say import label
from tests.conftest import REPO


def chorus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chorus.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_stats_json_on_movielens(ml100k):
    proc = chorus("data", "stats", "--data", str(ml100k), "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert (stats["reviews"], stats["users"], stats["items"], stats["mean_rating"]) == (100000, 943, 1682, 3.52986)
    assert stats["skipped_rows"] == 0 and stats["skipped_by_reason"] == {}


def test_stats_table_reports_skipped_rows(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t1\t5\t881250949\n1\t2\t9\t881250949\n2\t1\n")
    proc = chorus("data", "stats", "--data", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "rating_out_of_scale" in proc.stdout and "wrong_field_count" in proc.stdout
    assert "2 rows skipped:\n" in proc.stderr
    assert "line 2, rating_out_of_scale: '1\\t2\\t9\\t881250949' (movielens-100k ratings run from 1 to 5" in proc.stderr
    assert "line 3, wrong_field_count: '2\\t1' (2 fields; each movielens-100k row has 4 tab-separated" in proc.stderr


def test_errors_are_clear_and_non_zero(tmp_path):
    proc = chorus("data", "stats", "--data", str(tmp_path / "missing.tsv"))
    assert proc.returncode == 1 and "chorus: error: no such data file" in proc.stderr
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    proc = chorus("data", "stats", "--data", str(empty))
    assert proc.returncode == 1 and "no valid amazon-tsv row" in proc.stderr
    proc = chorus("data", "generate", "--out", str(tmp_path / "x.tsv"), "--reviews", "-3")
    assert proc.returncode == 2 and "at least 1" in proc.stderr
    proc = chorus("train", "--data", str(empty), "--components", "nonsense")
    assert proc.returncode == 1 and "unknown component 'nonsense'" in proc.stderr
    proc = chorus("data", "generate", "--out", str(tmp_path), "--reviews", "10")
    assert proc.returncode == 1 and "chorus: error: Is a directory" in proc.stderr and "Traceback" not in proc.stderr
    proc = chorus("data", "generate", "--out", str(tmp_path / "x.tsv"), "--reviews", "100000000000")
    assert proc.returncode == 2 and "at most 50,000,000 reviews" in proc.stderr


def test_generate_then_stats(tmp_path):
    out = tmp_path / "demo.tsv.gz"
    proc = chorus("data", "generate", "--out", str(out), "--reviews", "2000", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(chorus("data", "stats", "--data", str(out), "--json").stdout)
    assert stats["reviews"] == 2000 and stats["skipped_rows"] == 0


def test_evaluate_reports_every_model_on_test_data(amazon_5core):
    proc = chorus("evaluate", "--data", str(amazon_5core), "--protocol", "kfold", "--folds", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["protocol"] == "kfold" and result["folds"] == 2 and result["seconds"] > 0
    assert set(result["models"]) == {"mean", "bias", "latent", "similarity", "text_aware"}
    for m in result["models"].values():
        # fold means: the mean of per-fold RMSEs is at most the root of the mean MSE
        assert m["rmse"] <= m["mse"] ** 0.5 + 1e-9 and 0 < m["mae"] <= m["rmse"]
    assert result["models"]["bias"]["mse"] < result["models"]["mean"]["mse"]
    # selection happened inside each training fold, on its own validation rows
    assert len(result["hyperparameters"]) == 2
    assert all(hp["selected"] in ("bias", "latent") for hp in result["hyperparameters"])
    table = chorus("evaluate", "--data", str(amazon_5core), "--no-similarity")
    assert table.returncode == 0 and "latent" in table.stdout and "similarity" not in table.stdout


def test_artifacts_list_verify_and_roll_back(tmp_path):
    from chorus.shared.artifacts import read_current
    from chorus.shared.data.synthetic import generate_reviews
    from chorus.training.train import train

    data = generate_reviews(tmp_path / "d.tsv", 500, seed=1, progress=False)
    root = tmp_path / "art"
    first = train(data, root, ["rating"], progress=False, log=lambda _m: None)
    second = train(data, root, ["rating"], seed=1, progress=False, log=lambda _m: None)
    listing = chorus("artifacts", "list", "--artifacts", str(root))
    assert listing.returncode == 0 and f"* {second}" in listing.stdout and f"  {first}" in listing.stdout
    assert chorus("artifacts", "verify", "--artifacts", str(root)).returncode == 0
    assert chorus("artifacts", "use", first, "--artifacts", str(root)).returncode == 0
    assert read_current(root) == first
    (root / second / "rating" / "user_bias.npy").write_bytes(b"junk")
    proc = chorus("artifacts", "use", second, "--artifacts", str(root))
    assert proc.returncode == 1 and "truncated or altered" in proc.stderr and read_current(root) == first
    proc = chorus("artifacts", "verify", "nope", "--artifacts", str(root))
    assert proc.returncode == 1 and "incomplete or missing" in proc.stderr
    (root / second / "manifest.json").write_text("[]")
    listing = chorus("artifacts", "list", "--artifacts", str(root))
    assert listing.returncode == 0 and f"{second}  unusable" in listing.stdout and f"* {first}" in listing.stdout
    proc = chorus("artifacts", "use", f"../art/{first}", "--artifacts", str(root))
    assert proc.returncode == 1 and read_current(root) == first


def test_training_without_the_train_extra_says_what_to_install(tmp_path, amazon_tsv_sample):
    """The services' dependencies alone serve but do not train: chorus train names the missing extra, exits 1 and
    leaves no version behind. (numba made unimportable stands in for an install without the extra.)"""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "from chorus.cli import main\n"
        f"sys.exit(main(['train', '--data', {str(amazon_tsv_sample)!r}, '--artifacts', {str(tmp_path / 'a')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "needs the training dependencies (numba is not installed)" in proc.stderr
    assert "pip install 'chorus-recommender[train]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_train_shows_the_rows_it_skipped(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = [f"{u},{i},{(u + i) % 5 + 1},{1000 + u}" for u in range(1, 7) for i in range(1, 6)]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n1,3,x,5\n2,3\n")
    proc = chorus(
        "train", "--data", str(path), "--artifacts", str(tmp_path / "artifacts"), "--components", "similarity"
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 rows skipped:\n" in proc.stderr
    assert "line 32, bad_rating: '1,3,x,5' (the rating must be a number)" in proc.stderr
    assert "line 33, wrong_field_count: '2,3' (2 fields; each movielens-csv row has 4 comma-separated fields: " in (
        proc.stderr
    )


def test_data_messages_say_what_is_wrong(tmp_path):
    proc = chorus("data", "stats", "--data", str(tmp_path))
    assert proc.returncode == 1 and f"chorus: error: {tmp_path} is a folder, not a data file" in proc.stderr
    binary = tmp_path / "photo.dat"
    binary.write_bytes(bytes(range(256)) * 16)
    proc = chorus("data", "stats", "--data", str(binary))
    assert proc.returncode == 1 and "it holds binary data, not text" in proc.stderr
    assert "\\x" not in proc.stderr and "\ufffd" not in proc.stderr
    mystery = tmp_path / "mystery.txt"
    mystery.write_text("1;2;3\n")
    proc = chorus("data", "stats", "--data", str(mystery))
    assert proc.returncode == 1 and "name it with --format (amazon-tsv, " in proc.stderr


def test_up_takes_a_format_for_its_data():
    proc = chorus("up", "--help")
    assert proc.returncode == 0 and "--format {amazon-tsv,amazon-json,movielens-100k,movielens-csv}" in proc.stdout
    proc = chorus("up", "--format", "movielens-csv")
    assert proc.returncode == 1 and "--format is the format of the --data file" in proc.stderr


#: What a Python dict or list repr looks like on a line: ``{'a': 1``, ``['x'``, ``{"a": 1`` (JSON is only for --json).
DICT_REPR = re.compile(r"[{\[]\s*['\"]\w*['\"]\s*[:,\]]|\{\s*\}|'\w+':\s")


def assert_for_people(text: str) -> None:
    for line in text.splitlines():
        assert not DICT_REPR.search(line), f"looks like a repr: {line!r}"
        assert len(line) <= 200, f"a line of {len(line)} characters: {line[:80]!r}..."


def test_the_repr_detector_catches_reprs():
    for line in ("trained x: {'selected': 'latent', 'K': 50}", "['a', 'b']", "chosen {}", 'a {"k": 1}'):
        assert DICT_REPR.search(line), line
    for line in ("Ranking: EASE (λ=500) chosen, validation NDCG@10 0.4431 (iALS 0.4312)", "model  MSE  RMSE"):
        assert not DICT_REPR.search(line), line


@pytest.fixture(scope="module")
def small_reviews(tmp_path_factory):
    out = tmp_path_factory.mktemp("people") / "reviews.tsv"
    proc = chorus("data", "generate", "--out", str(out), "--reviews", "3000", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    return out


def test_evaluate_prints_tables_and_sentences_and_the_same_figures_as_json(small_reviews, tmp_path):
    args = ("evaluate", "--data", str(small_reviews), "--task", "all", "--k", "5", "--no-similarity", "--seed", "3")
    report = tmp_path / "report.html"
    people = chorus(*args, "--report", str(report), timeout=300)
    assert people.returncode == 0, people.stderr
    assert_for_people(people.stdout)
    assert "Ranking: " in people.stdout and " chosen, validation NDCG@5 " in people.stdout
    assert f"Report written to {report}." in people.stdout
    machine = chorus(*args, "--json", timeout=300)
    assert machine.returncode == 0, machine.stderr
    result = json.loads(machine.stdout)
    assert set(result) == {"rating", "ranking"}
    # the table's figures are the JSON's, to the 4 decimals shown
    for kind, m in result["ranking"]["models"].items():
        row = next(line for line in people.stdout.splitlines() if re.match(rf"[* ]{kind}\s+0\.", line))
        assert row.split()[-7:-1] == [f"{m[c]:.4f}" for c in RANKING_COLUMNS], row
    for name, m in result["rating"]["models"].items():
        row = next(line for line in people.stdout.splitlines() if line.startswith(name + "  "))
        numbers = row.removeprefix(name).split()
        assert numbers[:3] == [f"{m[c]:.4f}" for c in ("mse", "rmse", "mae")], row
    text = report.read_text(encoding="utf-8")
    assert text.count("<svg") >= 3 and "http://" not in text and "https://" not in text


def test_evaluate_refuses_a_report_of_a_text_task(small_reviews, tmp_path):
    proc = chorus("evaluate", "--data", str(small_reviews), "--task", "verified", "--report", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and "--report shows the rating and ranking evaluations" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_train_says_what_it_chose_in_sentences_and_the_same_figures_as_json(small_reviews, tmp_path):
    people = chorus("train", "--data", str(small_reviews), "--artifacts", str(tmp_path / "a"), timeout=300)
    assert people.returncode == 0, people.stderr
    assert_for_people(people.stdout)
    machine = chorus("train", "--data", str(small_reviews), "--artifacts", str(tmp_path / "b"), "--json", timeout=300)
    assert machine.returncode == 0, machine.stderr
    record = json.loads(machine.stdout)  # nothing but the JSON on stdout
    assert set(record["components"]) == {"similarity", "rating", "ranking", "text"} and record["version"]
    ranking = record["components"]["ranking"]
    default, ndcg = ranking["default"], ranking["validation_ndcg"]
    line = next(line for line in people.stdout.splitlines() if line.startswith("trained ranking in "))
    others = ", ".join(f"{label(k)} {v:.4f}" for k, v in ndcg.items() if k != default)
    assert f" chosen, validation NDCG@10 {ndcg[default]:.4f} ({others})." in line, line
    assert line.split(": ", 1)[1].startswith(label(default))
    rating = record["components"]["rating"]
    line = next(line for line in people.stdout.splitlines() if line.startswith("trained rating in "))
    assert f"chosen on validation, test RMSE {rating['test_rmse'][rating['selected']]:.4f}" in line, line
    assert "with its evaluation report (served at /report)" in people.stdout

"""Progress bars as a user sees them: on a terminal for every long step of ``chorus evaluate`` and ``chorus train``,
never with ``--json`` (the command's stderr is a pseudo-terminal here, its stdout a pipe)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from chorus.shared.data.synthetic import generate_reviews
from tests.conftest import REPO


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return generate_reviews(tmp_path_factory.mktemp("progress") / "reviews.tsv", 1500, seed=4, progress=False)


def on_a_terminal(*args: str) -> tuple[str, str]:
    """Run ``chorus args`` with stderr on a pseudo-terminal; its stdout and what the terminal showed."""
    main, side = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    with subprocess.Popen(
        [sys.executable, "-m", "chorus.cli", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=side, text=True, env=env
    ) as proc:
        os.close(side)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the command closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        stdout = proc.stdout.read() if proc.stdout else ""
        assert proc.wait(timeout=300) == 0, shown.decode(errors="replace")
    os.close(main)
    return stdout, shown.decode(errors="replace")


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_the_rating_evaluation_shows_a_bar_and_none_with_json(reviews, protocol):
    args = ("evaluate", "--data", str(reviews), "--protocol", protocol, "--folds", "2", "--no-similarity")
    _, shown = on_a_terminal(*args)
    assert "rating evaluation [" in shown and "rating evaluation done in" in shown
    stdout, shown = on_a_terminal(*args, "--json")
    assert shown == "" and stdout.lstrip().startswith("{")


def test_the_text_evaluations_show_a_bar(reviews):
    _, shown = on_a_terminal("evaluate", "--data", str(reviews), "--task", "text-rating")
    assert "text-rating evaluation [" in shown and "text-rating evaluation done in" in shown


def test_training_the_text_component_shows_a_bar_and_none_with_json(reviews, tmp_path):
    args = ("train", "--data", str(reviews), "--components", "text", "--workers", "1")
    _, shown = on_a_terminal(*args, "--artifacts", str(tmp_path / "a"))
    assert "text scorer [" in shown and "text scorer done in" in shown
    stdout, shown = on_a_terminal(*args, "--artifacts", str(tmp_path / "b"), "--json")
    assert shown == "" and stdout.lstrip().startswith("{")

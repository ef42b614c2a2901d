"""Retraining on new events: the ``--retrain-every`` / ``--every`` durations, when the :class:`Retrainer` retrains
(on a fake clock, a real store and a real artifact root), and ``chorus train --every`` end to end."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from chorus.cli import _train_args, build_parser, parse_duration
from chorus.launcher import Retrainer, duration_text
from chorus.shared.artifacts import ArtifactStore, read_current
from chorus.shared.data.synthetic import generate_reviews
from chorus.shared.events.rows import CUTOFF_KEY
from chorus.shared.events.store import EventStore, new_event, sqlite_url
from chorus.training.train import train
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("45s", 45), ("1.5h", 5400), ("2d", 172800), ("0.5s", 0.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "10x", "h", "-1h", "1 h", "1h-5m", "0s", "0m0s", "367d", "1e3s"])
def test_bad_durations_are_refused_with_the_expected_form(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
        parse_duration(text)


def test_durations_read_back_in_the_largest_unit():
    assert [duration_text(s) for s in (1800, 3600, 5400, 45, 0.5, 86400)] == ["30m", "1h", "90m", "45s", "0.5s", "1d"]


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recording(Retrainer):
    """A retrainer whose launches are recorded instead of run: when, not how, is under test here."""

    reasons: list[str] = field(default_factory=list)

    def launch(self, reason: str) -> None:
        self.reasons.append(reason)


@pytest.fixture
def root(tmp_path):
    data = generate_reviews(tmp_path / "reviews.tsv", 600, seed=2, progress=False)
    return data, tmp_path / "artifacts"


def test_the_retrainer_checks_every_period_and_retrains_only_past_the_cutoff(root, store_url):
    data, artifacts = root
    store = EventStore(store_url)
    clock = Clock()
    retrainer = Recording(artifacts, [], store, 60.0, log=lambda _m: None, clock=clock)
    assert retrainer.pending() == "no version yet"

    train(data, artifacts, ["similarity"], progress=False, log=lambda _m: None, events_url=store_url)
    retrainer.start()
    clock.now += 120
    retrainer.check()
    assert retrainer.reasons == []  # nothing new

    store.append([new_event("u", "i", "rating", 4.0)])
    clock.now += 59
    retrainer.check()
    assert retrainer.reasons == []  # not due yet
    clock.now += 1
    retrainer.check()
    name = read_current(artifacts)
    assert retrainer.reasons == [f"the event store is at seq 1, version {name} at 0"]

    train(data, artifacts, ["similarity"], progress=False, log=lambda _m: None, events_url=store_url)
    clock.now += 60
    retrainer.check()
    assert len(retrainer.reasons) == 1 and retrainer.pending() is None
    store.forget("u", timestamp=0)  # a tombstone is news too: the version still holds the user's rows
    assert retrainer.pending() is not None
    store.close()


def test_a_version_of_another_store_is_retrained_and_a_store_failure_is_logged(root, tmp_path):
    data, artifacts = root
    first = sqlite_url(tmp_path / "first.db")
    EventStore(first).close()
    train(data, artifacts, ["similarity"], progress=False, log=lambda _m: None, events_url=first)
    other = EventStore(sqlite_url(tmp_path / "second.db"))
    said: list[str] = []
    retrainer = Recording(artifacts, [], other, 1.0, log=said.append, clock=Clock())
    assert "was trained on the events of another store (sqlite:///" in str(retrainer.pending())

    other.engine.dispose()
    (tmp_path / "second.db").unlink()
    (tmp_path / "second.db").mkdir()  # no longer a database file
    retrainer.check()
    assert retrainer.reasons == [] and said[-1].startswith("cannot tell whether to retrain (")
    assert said[-1].endswith("trying again later")


def test_train_every_trains_then_retrains_on_new_events_and_stops_on_sigterm(root, tmp_path):
    data, artifacts = root
    url = sqlite_url(tmp_path / "events.db")
    EventStore(url).close()
    cmd = [sys.executable, "-m", "chorus.cli", "train", "--data", str(data), "--artifacts", str(artifacts)]
    cmd += ["--components", "similarity", "--every", "1s"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env={**os.environ, "CHORUS_EVENTS_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180

        def wait_for(text: str) -> None:
            while not any(text in line for line in lines):
                assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
                lines.append(proc.stdout.readline())  # type: ignore[union-attr]

        wait_for("retrained: version")  # no version yet: trained at once
        first = read_current(artifacts)
        assert any("retraining: no version yet" in line for line in lines)
        store = EventStore(url)
        store.append([new_event("newcomer", "B0NEW", "purchase")])
        store.close()
        lines.clear()
        wait_for("retrained: version")
        second = read_current(artifacts)
        assert second != first
        assert ArtifactStore(artifacts).open(second, components=[], verify=False).manifest[CUTOFF_KEY] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_retraining_command_repeats_the_options_but_not_the_store_url():
    args = build_parser().parse_args(
        ["train", "--data", "d.tsv", "--components", "rating", "--seed", "3", "--every", "1h"]
        + ["--events-url", "postgresql://u:pw@db/chorus"]
    )
    repeated = _train_args(args)
    assert repeated == [
        "--data", "d.tsv", "--artifacts", "artifacts", "--components", "rating", "--seed", "3", "--keep", "5",
        "--engine", "numpy",
    ]  # fmt: skip

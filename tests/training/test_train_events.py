"""`chorus train --events-url`: the dump plus the store's events up to a cutoff, minus the forgotten users, on both
store backends; and the row rule's corner cases on hand-made rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chorus.cli import main
from chorus.shared.artifacts import ArtifactStore, list_versions
from chorus.shared.contract.errors import DataError
from chorus.shared.data import load_ratings
from chorus.shared.data.component import load_data_component
from chorus.shared.data.ratings import LoadReport, Ratings, RatingScale, text_array
from chorus.shared.data.synthetic import generate_reviews
from chorus.shared.events.rows import CUTOFF_KEY, EventRow
from chorus.shared.events.store import EventStore, new_event
from chorus.training.events import merge_rows, with_events
from chorus.training.train import train

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Path:
    return generate_reviews(tmp_path_factory.mktemp("dump") / "reviews.tsv", 1500, seed=3, progress=False)


def quiet_train(data: Path, artifacts: Path, events_url: str | None, components: tuple[str, ...] = ("similarity",)):
    name = train(data, artifacts, list(components), progress=False, log=lambda _m: None, events_url=events_url)
    return ArtifactStore(artifacts).open(name)


def rows_by_pair(r: Ratings) -> dict[tuple[str, str], float]:
    users, items = r.user_ids[r.user].tolist(), r.item_ids[r.item].tolist()
    return dict(zip(zip(users, items, strict=True), r.rating.tolist(), strict=True))


def file_hashes(manifest: dict[str, Any], component: str) -> dict[str, str]:
    return {name: info["sha256"] for name, info in manifest["components"][component]["files"].items()}


def test_a_version_holds_the_dump_and_the_events_up_to_its_cutoff_without_forgotten_users(dump, store_url, tmp_path):
    loaded = load_ratings(dump, progress=False)
    pairs = rows_by_pair(loaded)
    (user, item), old = next(iter(pairs.items()))
    new = 1.0 if old != 1.0 else 5.0
    forgotten = next(u for u in loaded.user_ids.tolist() if u != user)
    forgotten_rows = int(np.sum(loaded.user_ids[loaded.user] == forgotten))
    unknown_item = "B0NEWITEM1"

    store = EventStore(store_url)
    store.append(
        [
            new_event("newcomer", unknown_item, "rating", 4.0, timestamp=1.7e9),
            new_event(user, item, "rating", new, timestamp=1.7e9),  # re-rates a pair of the dump
            new_event("newcomer", item, "purchase", timestamp=1.7e9 + 1),
            new_event("newcomer", "B0VIEWED", "view", timestamp=1.7e9 + 2),  # no row
            new_event("x" * 200 + "\u00e9" * 56, item, "rating", 5.0),  # 256 characters but 312 bytes: skipped
            new_event("newcomer", "B0HALFSTAR", "rating", 3.5),  # not on the 1..5 grid: skipped
        ]
    )
    store.append([new_event(forgotten, item, "rating", 2.0)])  # deleted by the forget below
    store.forget(forgotten, timestamp=1.7e9)
    store.append([new_event(forgotten, unknown_item, "rating", 5.0)])  # after the tombstone: kept
    cutoff = store.last_seq()

    version = quiet_train(dump, tmp_path / "artifacts", store_url)
    manifest = version.manifest
    assert manifest[CUTOFF_KEY] == cutoff
    events = manifest["events"]
    assert (events["event_rows"], events["replaced_dump_rows"]) == (4, 1)
    assert (events["forgotten_users"], events["forgotten_dump_rows"]) == (1, forgotten_rows)
    assert events["skipped_by_reason"] == {"id_too_long": 1, "rating_out_of_scale": 1}
    assert [e["reason"] for e in events["examples"]] == ["id_too_long", "rating_out_of_scale"]

    data = load_data_component(version)
    rows = rows_by_pair(data)
    assert data.n == loaded.n - forgotten_rows + 3 == manifest["dataset"]["stats"]["reviews"]
    assert rows[(user, item)] == new
    assert rows[("newcomer", unknown_item)] == 4.0 and rows[("newcomer", item)] == 3.0  # a purchase: the middle
    assert ("newcomer", "B0VIEWED") not in rows and "B0VIEWED" not in data.item_ids.tolist()
    assert rows[(forgotten, unknown_item)] == 5.0  # the user came back after being forgotten
    assert [p for p in rows if p[0] == forgotten] == [(forgotten, unknown_item)]
    assert list(data.user_ids) == sorted(data.user_ids) and list(data.item_ids) == sorted(data.item_ids)
    assert data.titles[list(data.item_ids).index(unknown_item)] == ""

    # nothing new in the store: a second version is the same, array for array
    again = quiet_train(dump, tmp_path / "artifacts", store_url).manifest
    assert again["version"] != manifest["version"] and again[CUTOFF_KEY] == cutoff
    for component in ("data", "similarity"):
        assert file_hashes(again, component) == file_hashes(manifest, component)
    store.close()


def test_events_and_tombstones_after_the_cutoff_stay_out(dump, store_url):
    loaded = load_ratings(dump, progress=False)
    store = EventStore(store_url)
    store.append([new_event("early", "B0EARLY", "rating", 5.0)])
    cutoff = store.last_seq()
    store.append([new_event("late", "B0LATE", "rating", 5.0)])
    victim = str(loaded.user_ids[0])
    store.forget(victim, timestamp=0)

    merged, summary = with_events(loaded, store, cutoff)
    assert summary.cutoff == cutoff and summary.event_rows == 1 and summary.forgotten_users == 0
    assert "early" in merged.user_ids.tolist() and "late" not in merged.user_ids.tolist()
    assert victim in merged.user_ids.tolist() and merged.n == loaded.n + 1
    store.close()


def test_without_events_a_version_has_no_cutoff_and_events_change_what_is_reused(dump, tmp_path):
    from chorus.shared.events.store import sqlite_url

    artifacts = tmp_path / "artifacts"
    plain = quiet_train(dump, artifacts, None).manifest
    assert CUTOFF_KEY not in plain and "events" not in plain
    url = sqlite_url(tmp_path / "events.db")
    store = EventStore(url)
    store.append([new_event("someone", "B0SOMETHING", "rating", 5.0)])
    said: list[str] = []
    # only the rating component is retrained; the similarity table of the version without events is not reused
    name = train(dump, artifacts, ["rating"], progress=False, log=said.append, events_url=url)
    manifest = ArtifactStore(artifacts).open(name, components=[], verify=False).manifest
    assert set(manifest["components"]) == {"data", "rating", "report"} and not any("kept" in s for s in said)
    # the same events again: the similarity-less version's rating is carried over
    name = train(dump, artifacts, ["similarity"], progress=False, log=said.append, events_url=url)
    manifest = ArtifactStore(artifacts).open(name, components=[], verify=False).manifest
    assert set(manifest["components"]) == {"data", "similarity", "rating", "report"}
    assert said[-2].startswith("kept rating from version") and said[-2].endswith("(same data file and events)")
    store.close()


def test_cli_errors_are_clear_and_publish_nothing(dump, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CHORUS_EVENTS_URL", raising=False)
    artifacts = tmp_path / "artifacts"
    cases = {
        "not-a-url": "not an event store URL",
        f"sqlite:///{tmp_path / 'typo.db'}": "no event store at",
        "postgresql://nobody:secret@127.0.0.1:1/chorus": "cannot open the event store postgresql://",
        "mysql://someone@host/db": "an event store is SQLite or PostgreSQL",
    }
    for url, message in cases.items():
        code = main(["train", "--data", str(dump), "--artifacts", str(artifacts), "--events-url", url])
        err = capsys.readouterr().err
        assert code == 1 and message in err and "Traceback" not in err, err
        assert "secret" not in err
    assert list_versions(artifacts) == [] and not (tmp_path / "typo.db").exists()
    with pytest.raises(SystemExit) as usage:
        main(["train", "--data", str(dump), "--every", "soon"])
    assert usage.value.code == 2 and "expected a duration such as 30m" in capsys.readouterr().err
    assert main(["train", "--data", str(dump), "--every", "1h"]) == 1
    assert "--every retrains when new events arrive: it needs --events-url" in capsys.readouterr().err


# The row rule on hand-made data: a dump of two users and two items.


FIVE_STARS = RatingScale(1.0, 5.0, 1.0)


def tiny(scale: RatingScale = FIVE_STARS, text: bool = True) -> Ratings:
    return Ratings(
        user=np.array([0, 0, 1], dtype=np.int32),
        item=np.array([0, 1, 1], dtype=np.int32),
        rating=np.array([5, 4, 2], dtype=np.float32),
        timestamp=np.array([10, 20, 30], dtype=np.int64),
        user_ids=np.array(["ann", "bob"]),
        item_ids=np.array(["i1", "i2"]),
        titles=text_array(["One", "Two"]),
        scale=scale,
        report=LoadReport(path="tiny", format="amazon-tsv"),
        verified=np.array([True, False, True]),
        helpful_votes=np.array([1, 0, 3], dtype=np.int32),
        total_votes=np.array([2, 0, 3], dtype=np.int32),
        text=np.array(["great", "fine", "meh"], dtype=object) if text else None,
    )


def row(user: str, item: str, rating: float, seq: int, ts: float = 100.0) -> EventRow:
    return EventRow(user, item, rating, ts, seq)


def test_merge_replaces_pairs_drops_forgotten_users_and_keeps_every_column_aligned():
    merged = merge_rows(
        tiny(),
        [row("bob", "i1", 4.0, 1), row("ann", "i2", 1.0, 2), row("cat", "i3", 3.0, 3, ts=99.9)],
        forgotten={"bob"},
        purchases=np.array([3]),
        purchased={("cat", "i3")},
        texts={1: "new text"},
    )
    assert merged.user_ids.tolist() == ["ann", "bob", "cat"] and merged.item_ids.tolist() == ["i1", "i2", "i3"]
    assert merged.verified is not None and merged.helpful_votes is not None and merged.text is not None
    got = list(
        zip(
            merged.user_ids[merged.user].tolist(),
            merged.item_ids[merged.item].tolist(),
            merged.rating.tolist(),
            merged.timestamp.tolist(),
            merged.verified.tolist(),
            merged.helpful_votes.tolist(),
            merged.text.tolist(),
            strict=True,
        )
    )
    # ann's i2 is replaced; bob's dump row is gone, his event after the tombstone stays; dump rows first
    assert got == [
        ("ann", "i1", 5.0, 10, True, 1, "great"),
        ("bob", "i1", 4.0, 100, False, 0, "new text"),
        ("ann", "i2", 1.0, 100, False, 0, ""),
        ("cat", "i3", 3.0, 99, True, 0, ""),
    ]
    assert merged.titles.tolist() == ["One", "Two", ""]


def test_merge_skips_rows_a_loader_would_skip_and_counts_them():
    from chorus.training.events import EventsSummary

    summary = EventsSummary(store="s", cutoff=9)
    scale = RatingScale(0.5, 5.0, 0.5)
    merged = merge_rows(
        tiny(scale, text=False),
        [
            row("a" * 257, "i1", 4.0, 1),
            row("ann", "i\x00", 4.0, 2),
            row("ann", "i9", float("nan"), 3),
            row("ann", "i9", 5.5, 4),
            row("ann", "i9", 4.5, 5, ts=float("inf")),
            row("ann", "i8", 2.75, 6),  # off the 0.5 grid, but a purchase: the scale's middle
            row("ann", "i7", 2.75, 7),  # the same number from a rating event: skipped
        ],
        forgotten=set(),
        purchases=np.array([6]),
        summary=summary,
    )
    assert merged.n == 4 and merged.text is None and summary.event_rows == 1
    assert summary.skipped_by_reason == Counter(
        {"id_too_long": 1, "nul_in_id": 1, "bad_rating": 1, "rating_out_of_scale": 2, "bad_timestamp": 1}
    )
    assert [e["seq"] for e in summary.examples] == [1, 2, 3, 4, 7]


def test_merge_refuses_to_leave_no_row():
    with pytest.raises(DataError, match="no row is left"):
        merge_rows(tiny(), [], forgotten={"ann", "bob"})

"""Live feedback benchmark: a time-ordered replay of MovieLens 100K through the event store and the rating
service's own code, each served method frozen (the version alone) against live (the version plus the user's
events since).

Protocol: the rows of ``u.data`` sorted by timestamp (ties in file order); the first ``--train`` share (80%) is
written to a file of the same format and trained with the project's own training code (``chorus train``'s
``rating`` and ``ranking`` components, seed ``--seed``) into a version under a temporary artifact root; the rest
are streamed in order. Before each streamed event (user u rates item i) every method answers u's top ``--k``:

* *frozen*: ``RatingService.recommend_user(u, k, method, [])`` with no events, the version's answer;
* *live*: the path of ``GET /v1/users/{u}/recommendations`` without HTTP, one read of the store after the
  version's cutoff (``LiveEvents.live``) and ``RatingService.recommend_user(..., live)``, so u's earlier streamed
  events are folded in (and excluded from the list);

a hit is i in the list; ``NDCG@k`` of one event is ``1 / log2(rank + 2)`` for a hit at 0-based ``rank``, else 0;
both are averaged over the streamed events, over those of users the version knows, and over those of new users.
Then the event is appended to the store (one transaction, as ``POST /v1/events`` would), so it is live for the
next events. An item first seen in the stream is in no version's catalog: no method can hit it, frozen or live.

Throughput: ``live ms`` is the mean wall time of one live answer (the store read included), ``events/s`` the
whole replay's rate (every method's live answer and the append of each event; a user's frozen answers are
computed once, as they never change). The store is a SQLite
file in the temporary directory unless ``--events-url`` names another (an empty one: the replay appends to it).

    .venv/bin/python bench/fold_in.py [--data-dir DIR] [--train 0.8] [--k 10] [--seed 0] [--limit N]
                                      [--events-url URL] [--json out.json]

The data directory defaults to ``$CHORUS_DATA_DIR``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import machine, write_json  # noqa: E402
from chorus.services.rating.live import LiveEvents  # noqa: E402
from chorus.services.rating.service import RatingService, load_service  # noqa: E402
from chorus.shared.artifacts import ArtifactStore  # noqa: E402
from chorus.shared.data import Ratings, load_ratings  # noqa: E402
from chorus.shared.events.store import new_event, sqlite_url  # noqa: E402
from chorus.shared.progress import Progress  # noqa: E402
from chorus.training.train import train  # noqa: E402


def time_order(ratings: Ratings) -> np.ndarray:
    """Row indices by timestamp, ties in file order."""
    return np.argsort(ratings.timestamp, kind="stable")


def write_u_data(ratings: Ratings, rows: np.ndarray, path: Path) -> None:
    """``rows`` of ``ratings`` as a MovieLens 100K ``u.data`` (user, item, rating, timestamp; tab-separated)."""
    users, items = ratings.user_ids[ratings.user[rows]], ratings.item_ids[ratings.item[rows]]
    lines = (
        f"{u}\t{i}\t{int(r)}\t{int(t)}\n"
        for u, i, r, t in zip(users, items, ratings.rating[rows], ratings.timestamp[rows], strict=True)
    )
    path.write_text("".join(lines))


SEGMENTS = ("all", "new", "known")
"""Every streamed event; those of users the version never saw; those of users it knows."""


class Tally:
    """Hits and NDCG of one method, frozen and live, per segment of the events, and the time of its live answers."""

    def __init__(self) -> None:
        self.hits = {(mode, seg): 0 for mode in ("frozen", "live") for seg in SEGMENTS}
        self.gain = {(mode, seg): 0.0 for mode in ("frozen", "live") for seg in SEGMENTS}
        self.live_seconds = 0.0

    def add(self, mode: str, listed: list[str], item: str, new_user: bool) -> None:
        if item in listed:
            for seg in ("all", "new" if new_user else "known"):
                self.hits[mode, seg] += 1
                self.gain[mode, seg] += 1.0 / np.log2(listed.index(item) + 2)


def replay(
    svc: RatingService, events: LiveEvents, stream: list[tuple[str, str, float, float]], k: int
) -> tuple[dict[str, Tally], float, float]:
    """Replay ``stream`` ((user, item, rating, timestamp) in time order): every method's frozen and live top ``k``
    before each event, then the event appended. Returns the tallies, the replay's seconds and the appends'."""
    store = events.open()
    assert store is not None
    methods = svc.methods
    tallies = {m: Tally() for m in methods}
    ids = svc.catalog.item_ids
    known = set(svc.catalog.user_ids.tolist())
    frozen: dict[tuple[str, str], list[str]] = {}  # the version alone answers a user the same all along
    appends = 0.0
    start = time.perf_counter()
    with Progress("replaying events", total=len(stream)) as bar:
        for n, (user, item, rating, ts) in enumerate(stream):
            new_user = user not in known
            for method in methods:
                if (user, method) not in frozen:
                    frozen[user, method] = [str(ids[i]) for i in svc.recommend_user(user, k, method, []).items]
                tallies[method].add("frozen", frozen[user, method], item, new_user)
                t0 = time.perf_counter()
                live = svc.recommend_user(user, k, method, [], events.live(user, svc.cutoff))
                tallies[method].live_seconds += time.perf_counter() - t0
                tallies[method].add("live", [str(ids[i]) for i in live.items], item, new_user)
            t0 = time.perf_counter()
            store.append([new_event(user, item, "rating", rating, timestamp=ts)])
            appends += time.perf_counter() - t0
            bar.update(n + 1)
    return tallies, time.perf_counter() - start, appends


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = os.environ.get("CHORUS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=default_dir, help=f"folder of the datasets (default {default_dir})")
    ap.add_argument("--train", type=float, default=0.8, help="share of the rows, oldest first, trained on")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="replay only the first N streamed events")
    ap.add_argument("--events-url", default=None, help="an empty event store (default: SQLite in a temporary dir)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if not 0 < args.train < 1:
        ap.error("--train must be between 0 and 1")
    source = Path(args.data_dir) / "movielens-100k" / "u.data"
    if not source.exists():
        print(f"{source} not found (set --data-dir or CHORUS_DATA_DIR)", file=sys.stderr)
        return 1

    print(f"machine: {machine()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratings = load_ratings(source, progress=False)
    order = time_order(ratings)
    cut = int(round(args.train * ratings.n))
    with tempfile.TemporaryDirectory(prefix="chorus-fold-in-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        write_u_data(ratings, order[:cut], work / "data" / "u.data")
        if (source.parent / "u.item").exists():  # titles, as the loader reads them beside u.data
            shutil.copy(source.parent / "u.item", work / "data" / "u.item")
        t0 = time.perf_counter()
        train(work / "data" / "u.data", work / "artifacts", ["rating", "ranking"], seed=args.seed, log=lambda _m: None)
        train_seconds = time.perf_counter() - t0
        svc = load_service(ArtifactStore(work / "artifacts").open())
        rest = order[cut:][: args.limit]
        stream = [
            (
                str(ratings.user_ids[ratings.user[r]]),
                str(ratings.item_ids[ratings.item[r]]),
                float(ratings.rating[r]),
                float(ratings.timestamp[r]),
            )
            for r in rest
        ]
        known = set(svc.catalog.user_ids.tolist())
        new_users = sum(1 for user, *_ in stream if user not in known)
        events = LiveEvents(args.events_url or sqlite_url(work / "events.db"))
        try:
            tallies, seconds, appends = replay(svc, events, stream, args.k)
        finally:
            events.close()

    n = len(stream)
    print(
        f"MovieLens 100K: trained on the first {cut:,} rows by time in {train_seconds:.1f} s "
        f"(rating model {svc.model.kind}, default method {svc.default}); streamed {n:,} events, "
        f"{new_users:,} of them from users the version never saw"
    )
    counts = {"all": n, "new": new_users, "known": n - new_users}
    results: dict[str, dict[str, float]] = {}
    for method, t in tallies.items():
        row = {"live_ms": 1000 * t.live_seconds / n}
        for seg in SEGMENTS:
            for mode in ("frozen", "live"):
                row[f"hr_{mode}_{seg}"] = t.hits[mode, seg] / max(counts[seg], 1)
                row[f"ndcg_{mode}_{seg}"] = t.gain[mode, seg] / max(counts[seg], 1)
        results[method] = row
    k = args.k
    print(
        f"\n{'':<10} {'every event':^35} {'users the version knows':^35} {'new users':^35} {'':>8}\n"
        f"{'method':<10}" + f" {'HR frozen':>9} {'HR live':>7} {'NDCG frz':>8} {'NDCG liv':>8}" * 3 + f" {'live ms':>8}"
    )
    for method, row in results.items():
        cells = "".join(
            f" {row[f'hr_frozen_{seg}']:>9.4f} {row[f'hr_live_{seg}']:>7.4f} {row[f'ndcg_frozen_{seg}']:>8.4f}"
            f" {row[f'ndcg_live_{seg}']:>8.4f}"
            for seg in ("all", "known", "new")
        )
        print(f"{method:<10}{cells} {row['live_ms']:>8.2f}")
    print(f"(HR and NDCG at {k}; {counts['known']:,} events of known users, {counts['new']:,} of new ones)")
    print(
        f"replay: {n / seconds:,.0f} events/s ({len(tallies)} live answers and one append per event); "
        f"appends alone {n / appends:,.0f} events/s"
    )
    write_json(
        args.json,
        {
            "machine": machine(),
            "dataset": "movielens-100k",
            "train_rows": cut,
            "streamed": n,
            "new_user_events": new_users,
            "k": args.k,
            "seed": args.seed,
            "rating_model": svc.model.kind,
            "methods": results,
            "events_per_second": n / seconds,
            "appends_per_second": n / appends,
            "train_seconds": train_seconds,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

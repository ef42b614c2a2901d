"""Benchmark of the similarity core: the textbook ``mostSimilarFast`` (as in McAuley, "Personalized Machine
Learning", 2022), written literally, against our online query and our table lookup, plus the neighbour-table
build.

For each dataset (the Amazon 5-core file and a generated 1M-review Amazon TSV by default), in a fresh process
so that its peak memory is its own:

1. build the index and the top-50 neighbour table for the three measures: seconds, traced peak of numpy
   allocations (tracemalloc), and the process's peak RSS right after the build;
2. draw ``--queries`` items uniformly (seeded) and time, per item, top-10 Jaccard by
   (a) the textbook ``mostSimilarFast`` written literally (Python sets, a loop over candidate items),
   (b) ``SimilarityIndex.similar_items(..., use_table=False)`` (sparse product online) and
   (c) the table lookup; results are checked equal; mean, p50 and p99 latency and the speed-ups are printed.
   The literal code runs until ``--literal-budget`` seconds are spent; speed-ups compare the same items.
3. online latency of cosine and Pearson, user-user Jaccard, recommendations (cosine, the default, and
   Jaccard) for 200 random users, and a 10,000-pair prediction batch.

Targets: online ≥ 50× faster than the literal code on 1M reviews; table lookup p99 < 1 ms; the full
table for 1M reviews in < 2 minutes and < 4 GB.

``--live``: the similarity service with live events instead (``docs/models.md``, "Similarity with live
events"). A version is built on the first 80% of MovieLens 100K's ratings by time, the last 20% are appended to a
SQLite event store as rating events, and the overlay reads them (one sync, timed); then similar-items latency
(k = 10, each measure, the snapshot's memo cleared before each query, so every dirty query is computed exactly)
for the dirty and the clean items, beside the version's own online query for the same items, the work
``W = Σ_{u∈U_i} |I_u|`` of the dirty items, a request with nothing new (one ``last_seq`` query), and
"because you liked" for users with and without live rows.

Usage::

    .venv/bin/python bench/similarity.py                       # 5-core + generated 1M (cached in --cache-dir)
    .venv/bin/python bench/similarity.py --data FILE --no-synthetic --queries 300 --json out.json
    .venv/bin/python bench/similarity.py --live [--live-data u.data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIVE_CORE = (
    Path(os.environ.get("CHORUS_DATA_DIR", REPO.parent / "shared" / "data"))
    / "amazon-musical-instruments-5core-2014"
    / "reviews_Musical_Instruments_5.json.gz"
)
ML_100K = Path(os.environ.get("CHORUS_DATA_DIR", REPO.parent / "shared" / "data")) / "movielens-100k" / "u.data"


# --- the textbook code, literally ----------------------------------------------------------------------------


def Jaccard(s1, s2):  # noqa: N802 - the textbook's name
    numer = len(s1.intersection(s2))
    denom = len(s1.union(s2))
    return numer / denom


def mostSimilarFast(i, usersPerItem, itemsPerUser, k=10):  # noqa: N802, N803
    similarities = []
    users = usersPerItem[i]
    candidateItems = set()  # noqa: N806
    for u in users:
        candidateItems = candidateItems.union(itemsPerUser[u])  # noqa: N806
    for i2 in candidateItems:
        if i2 == i:
            continue
        sim = Jaccard(users, usersPerItem[i2])
        similarities.append((sim, i2))
    # The one change: Chorus's ranking (rounded score descending, raw id ascending) instead of the textbook's
    # similarities.sort(reverse=True), whose ties fall to the largest id; otherwise the results could not be
    # compared item for item.
    similarities.sort(key=lambda t: (-round(t[0], 10), t[1]))
    return similarities[:k]


# --- one dataset -------------------------------------------------------------------------------------------


def stats_ms(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1e3
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "mean_ms": float(a.mean()),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def timed(f, *args, **kw):
    t = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t


def timed_cpu(f, *args, **kw):
    """(result, wall seconds, CPU seconds of this process): on a shared machine the CPU time shows the work
    itself, the wall clock also the waits for a core."""
    t, c = time.perf_counter(), time.process_time()
    out = f(*args, **kw)
    return out, time.perf_counter() - t, time.process_time() - c


PAIRS = 10_000  # pairs in a prediction batch


def run_dataset(path: Path, label: str, queries: int, literal_budget: float, seed: int) -> dict:
    from chorus.services.similarity import SimilarityIndex, id_rank
    from chorus.shared.data import load_ratings
    from chorus.training.similarity.build import build_similarity

    out: dict = {"dataset": label, "path": str(path)}
    r, load_s = timed(load_ratings, path, progress=False)
    out.update(reviews=r.n, users=r.n_users, items=r.n_items, load_seconds=load_s)
    print(f"\n== {label}: {r.n:,} reviews, {r.n_users:,} users, {r.n_items:,} items (loaded in {load_s:.1f} s)")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = build_similarity(
        r.user,
        r.item,
        r.rating,
        r.n_users,
        r.n_items,
        K=50,
        item_rank=id_rank(r.item_ids),
        user_rank=id_rank(r.user_ids),
        trace_memory=True,
    )
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    s = result.stats
    out["build"] = {**s, "peak_rss_bytes": rss_after, "rss_before_build_bytes": rss_before}
    print(
        f"table build (K=50, jaccard+cosine+pearson): {s['seconds']:.1f} s ({s['blocks']} blocks, "
        f"work {s['work']:,}); traced numpy peak {s['peak_traced_bytes'] / 2**30:.2f} GiB; "
        f"process peak RSS {rss_after / 2**30:.2f} GiB (before build {rss_before / 2**30:.2f} GiB)"
    )
    index, load_index_s = timed(SimilarityIndex.from_saved, result.arrays)
    out["from_saved_seconds"] = load_index_s

    # the textbook data structures, keyed by raw ids
    ids_u, ids_i = r.user_ids[r.user].tolist(), r.item_ids[r.item].tolist()
    usersPerItem, itemsPerUser = defaultdict(set), defaultdict(set)  # noqa: N806
    for u, i in zip(ids_u, ids_i, strict=True):
        usersPerItem[i].add(u)
        itemsPerUser[u].add(i)

    rng = np.random.default_rng(seed)
    sample = rng.choice(r.n_items, size=min(queries, r.n_items), replace=False)
    t_online, t_table, t_literal = [], [], []
    mismatches = 0
    online_res = {}
    for i in sample.tolist():
        res, dt = timed(index.similar_items, i, 10, "jaccard", use_table=False)
        t_online.append(dt)
        online_res[i] = res
        tab, dt = timed(index.similar_items, i, 10, "jaccard")
        t_table.append(dt)
        if not (np.array_equal(tab[0], res[0]) and np.array_equal(tab[1], res[1])):
            mismatches += 1
    spent = 0.0
    for i in sample.tolist():
        if spent > literal_budget:
            break
        lit, dt = timed(mostSimilarFast, str(r.item_ids[i]), usersPerItem, itemsPerUser)
        spent += dt
        t_literal.append(dt)
        ids, scores = online_res[i]
        if [x for _, x in lit] != r.item_ids[ids].tolist() or not np.allclose(
            [round(x, 10) for x, _ in lit], scores, rtol=0, atol=1e-12
        ):
            mismatches += 1
    n_lit = len(t_literal)
    lit_mean = float(np.mean(t_literal)) if n_lit else float("nan")
    on_same = float(np.mean(t_online[:n_lit])) if n_lit else float("nan")
    tab_same = float(np.mean(t_table[:n_lit])) if n_lit else float("nan")
    out["queries"] = {
        "literal": stats_ms(t_literal),
        "online": stats_ms(t_online),
        "table": stats_ms(t_table),
        "literal_items": n_lit,
        "sampled_items": int(sample.size),
        "speedup_online_vs_literal": lit_mean / on_same,
        "speedup_table_vs_literal": lit_mean / tab_same,
        "mismatches": mismatches,
    }
    q = out["queries"]
    print(
        f"top-10 Jaccard over {sample.size} uniformly drawn items (literal code on the first {n_lit}, "
        f"budget {literal_budget:.0f} s); results {'identical' if mismatches == 0 else f'DIFFER on {mismatches}'}"
    )
    for name in ("literal", "online", "table"):
        st = q[name]
        if st["n"]:
            print(
                f"  {name:8s} mean {st['mean_ms']:9.3f} ms   p50 {st['p50_ms']:9.3f} ms   "
                f"p99 {st['p99_ms']:9.3f} ms   max {st['max_ms']:9.3f} ms   (n={st['n']})"
            )
    print(
        f"  speed-up on the same items: online {q['speedup_online_vs_literal']:.0f}x, "
        f"table {q['speedup_table_vs_literal']:.0f}x"
    )

    extra = {}
    for measure in ("cosine", "pearson"):
        extra[f"online_{measure}"] = stats_ms(
            [timed(index.similar_items, i, 10, measure, use_table=False)[1] for i in sample[:200].tolist()]
        )
    users = rng.choice(r.n_users, size=min(200, r.n_users), replace=False).tolist()
    extra["similar_users_jaccard"] = stats_ms([timed(index.similar_users, u, 10, "jaccard")[1] for u in users])
    cpu = {}
    for measure in ("cosine", "jaccard", "pearson"):  # cosine is the default; the other two sum over the table
        walls, cpus = zip(*(timed_cpu(index.recommend, u, 10, measure)[1:] for u in users), strict=True)
        extra[f"recommend_{measure}"], cpu[f"recommend_{measure}"] = stats_ms(walls), stats_ms(cpus)
    pu, pi = rng.integers(0, r.n_users, PAIRS), rng.integers(0, r.n_items, PAIRS)
    for measure in ("jaccard", "cosine", "pearson"):  # jaccard is the default
        walls, cpus = zip(*(timed_cpu(index.predict, pu, pi, measure)[1:] for _ in range(3)), strict=True)
        extra[f"predict_{measure}_batch_{PAIRS}"] = stats_ms(walls)
        cpu[f"predict_{measure}_batch_{PAIRS}"] = stats_ms(cpus)
    out["other_queries"], out["other_queries_cpu"] = extra, cpu
    out["loadavg_after"] = os.getloadavg()
    print(
        f"other online queries (k=10; wall clock, and this process's CPU time where measured; {PAIRS:,} pairs a batch):"
    )
    for name, st in extra.items():
        line = f"  {name:28s} mean {st['mean_ms']:9.3f} ms   p50 {st['p50_ms']:9.3f} ms   p99 {st['p99_ms']:9.3f} ms"
        if name.startswith("predict"):
            line += f"   ({st['p50_ms'] / PAIRS:.4f} ms a pair)"
        if name in cpu:
            c = cpu[name]
            line += f"   CPU p50 {c['p50_ms']:8.3f} ms p99 {c['p99_ms']:8.3f} ms"
        print(line + f"   (n={st['n']})")
    return out


# --- live events --------------------------------------------------------------------------------------------


def run_live(path: Path, streamed: float, seed: int) -> dict:
    """The similarity service with the last ``streamed`` fraction of ``path``'s ratings (by time) as live events."""
    from chorus.services.similarity import SimilarityConfig, SimilarityIndex, id_rank
    from chorus.services.similarity.feed import EventFeed
    from chorus.services.similarity.model import SimilarityModel, live_state
    from chorus.shared.catalog import Catalog
    from chorus.shared.contract.names import Measure
    from chorus.shared.data import load_ratings
    from chorus.shared.events.store import MAX_BATCH, EventStore, new_event, sqlite_url
    from chorus.training.similarity.build import build_similarity

    r = load_ratings(path, progress=False)
    order = np.argsort(r.timestamp, kind="stable")
    cut = int(round(r.n * (1 - streamed)))
    old, new = order[:cut], order[cut:]
    users, user = np.unique(r.user_ids[r.user[old]].astype(str), return_inverse=True)
    items, item = np.unique(r.item_ids[r.item[old]].astype(str), return_inverse=True)
    built = build_similarity(
        user,
        item,
        r.rating[old],
        users.shape[0],
        items.shape[0],
        K=50,
        item_rank=id_rank(items),
        user_rank=id_rank(users),
        trace_memory=False,
    )
    index = SimilarityIndex.from_saved(built.arrays, SimilarityConfig())
    title_of = dict(zip(r.item_ids.tolist(), r.titles.tolist(), strict=True))
    reviews = np.bincount(item, minlength=items.shape[0])
    sums = np.bincount(item, weights=r.rating[old].astype(np.float64), minlength=items.shape[0])
    catalog = Catalog(
        users,
        items,
        np.array([title_of[i] for i in items.tolist()], dtype=np.dtypes.StringDType()),
        reviews.astype(np.int64),
        sums / np.maximum(reviews, 1),
        r.scale,
        {},
    )
    out: dict = {
        "dataset": str(path),
        "version_rows": int(cut),
        "streamed_rows": int(new.shape[0]),
        "version_users": int(users.shape[0]),
        "version_items": int(items.shape[0]),
    }
    print(
        f"\n== live events: a version on the first {cut:,} ratings of {path.name} by time "
        f"({users.shape[0]:,} users, {items.shape[0]:,} items), the last {new.shape[0]:,} streamed as events"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = sqlite_url(Path(tmp) / "events.db")
        store = EventStore(url)
        events = [
            new_event(
                str(r.user_ids[r.user[k]]),
                str(r.item_ids[r.item[k]]),
                "rating",
                rating=float(r.rating[k]),
                timestamp=float(r.timestamp[k]),
            )
            for k in new.tolist()
        ]
        _, append_s = timed(lambda: [store.append(events[a : a + MAX_BATCH]) for a in range(0, len(events), MAX_BATCH)])
        feed = EventFeed(url)
        model = SimilarityModel("bench", index, catalog, live_state(index, catalog, 0, feed), feed)
        view, sync_s = timed(model.view)
        ov = view.overlay
        out["append_seconds"], out["sync_seconds"] = append_s, sync_s
        idle = [timed(model.view)[1] for _ in range(300)]
        out["request_with_nothing_new"] = stats_ms(idle)
        new_users, new_items = ov.users.n - ov.users.ids.n_version, ov.items.n - ov.items.ids.n_version
        print(
            f"appended in {append_s:.1f} s; the first request read and folded them in {sync_s * 1e3:.0f} ms "
            f"({int(ov.items.touched.sum()):,} items and {int(ov.users.touched.sum()):,} users touched, "
            f"{new_items:,} new items, {new_users:,} new users); a request with nothing new: "
            f"p50 {out['request_with_nothing_new']['p50_ms']:.3f} ms, "
            f"p99 {out['request_with_nothing_new']['p99_ms']:.3f} ms (one last_seq query)"
        )
        every = np.arange(ov.items.n)
        dirty = np.array([ov.items.dirty(int(i)) for i in every.tolist()])
        work = {}
        for i in every[dirty].tolist():
            _, reviewers, _ = ov.items.gather(np.array([i]))
            work[i] = int(ov.users.lengths(reviewers).sum())
        w = np.array(list(work.values()) or [0])
        out["items"] = {"dirty": int(dirty.sum()), "clean": int((~dirty).sum())}
        out["dirty_work"] = {
            "p50": float(np.percentile(w, 50)),
            "p99": float(np.percentile(w, 99)),
            "max": int(w.max()),
        }
        dw = out["dirty_work"]
        print(
            f"{int(dirty.sum()):,} dirty items, {int((~dirty).sum()):,} clean; work W of the dirty ones: "
            f"p50 {dw['p50']:,.0f}, p99 {dw['p99']:,.0f}, max {dw['max']:,}"
        )
        rows = {}
        for measure in [m.value for m in Measure]:
            for label, chosen in (("dirty", every[dirty]), ("clean", every[~dirty])):
                times = []
                for i in chosen.tolist():
                    view.overlay.memo.clear()
                    times.append(timed(view.similar_items, i, 10, measure)[1])
                rows[f"{measure} {label}"] = stats_ms(times)
            version_items = every[dirty & (every < index.n_items)]
            rows[f"{measure} version online"] = stats_ms(
                [timed(index.similar_items, i, 10, measure, use_table=False)[1] for i in version_items.tolist()]
            )
        rng = np.random.default_rng(seed)
        live_users = np.flatnonzero(ov.users.touched)
        still = np.flatnonzero(~ov.users.touched[: index.n_users])
        for label, chosen in (("live rows", live_users), ("no live rows", still)):
            pick = rng.choice(chosen, size=min(200, chosen.shape[0]), replace=False) if chosen.shape[0] else chosen
            times = []
            for u in pick.tolist():
                view.overlay.memo.clear()
                times.append(timed(view.recommend, u, 10)[1])
            rows[f"because you liked, {label}"] = stats_ms(times)
        out["latency"] = rows
        print("latency per query (k = 10):")
        for name, st in rows.items():
            if st["n"]:
                print(
                    f"  {name:34s} p50 {st['p50_ms']:8.3f} ms   p99 {st['p99_ms']:8.3f} ms   "
                    f"max {st['max_ms']:8.3f} ms   (n={st['n']})"
                )
            else:
                print(f"  {name:34s} (none)")
        feed.close()
        store.close()
    return out


def print_ab(baselines: list[dict], results: list[dict], ref: str) -> None:
    """The query figures of the baseline and of this tree side by side: p50 / p99 per query (ms a pair for
    prediction batches), wall clock and CPU time."""
    for before, after in zip(baselines, results, strict=True):
        print(f"\n== A/B on {after['dataset']}: baseline {ref} -> this tree (wall clock; CPU time)")
        for name, st in after["other_queries"].items():
            old = before["other_queries"].get(name)
            if old is None:
                continue
            c_new, c_old = after["other_queries_cpu"].get(name), before["other_queries_cpu"].get(name)
            per = PAIRS if name.startswith("predict") else 1
            unit = "ms a pair" if per > 1 else "ms"

            def pair(a: dict, b: dict, key: str, per: int = per) -> str:
                return f"{a[key] / per:.4f} -> {b[key] / per:.4f}"

            line = f"  {name:28s} p50 {pair(old, st, 'p50_ms')}  p99 {pair(old, st, 'p99_ms')} {unit}"
            if c_new and c_old:
                line += f";  CPU p50 {pair(c_old, c_new, 'p50_ms')}  p99 {pair(c_old, c_new, 'p99_ms')}"
            print(line)
        print(
            f"  load average (1 min) at the end of each run: baseline {before['loadavg_after'][0]:.2f}, "
            f"this tree {after['loadavg_after'][0]:.2f}"
        )


# --- driver ------------------------------------------------------------------------------------------------


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": __import__("scipy").__version__,
        "loadavg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", action="append", type=Path, help="review file (repeatable); default: the 5-core file")
    p.add_argument("--reviews", type=int, default=1_000_000, help="size of the generated dataset (default 1M)")
    p.add_argument("--no-synthetic", action="store_true", help="skip the generated dataset")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "chorus-bench",
        help="where the generated file is kept between runs",
    )
    p.add_argument("--queries", type=int, default=300, help="items queried per dataset (default 300)")
    p.add_argument(
        "--literal-budget",
        type=float,
        default=90.0,
        help="seconds the literal textbook code may run per dataset (default 90)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--live", action="store_true", help="only the live-events benchmark (see above)")
    p.add_argument("--live-data", type=Path, default=ML_100K, help="MovieLens 100K u.data for --live")
    p.add_argument("--streamed", type=float, default=0.2, help="fraction of the ratings streamed with --live")
    p.add_argument(
        "--baseline",
        metavar="REF",
        help="A/B: run each dataset also with the chorus package of this git commit (e.g. main), in turn with this "
        "tree's, and print the query figures side by side",
    )
    p.add_argument("--worker", nargs=3, metavar=("PATH", "LABEL", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--code", type=Path, help=argparse.SUPPRESS)  # a worker's chorus package comes from here
    args = p.parse_args(argv)

    if args.worker:  # one dataset, in its own process
        path, label, out = args.worker
        if args.code:
            sys.path.insert(0, str(args.code))
        res = run_dataset(Path(path), label, args.queries, args.literal_budget, args.seed)
        Path(out).write_text(json.dumps(res, default=float))
        return 0

    if args.live:
        info = machine()
        print(f"machine: {info['cpus']} CPUs, {info['platform']}; load average {info['loadavg_at_start'][0]:.2f}")
        res = run_live(args.live_data, args.streamed, args.seed)
        if args.json:
            args.json.write_text(json.dumps({"machine": info, "live": res}, indent=2, default=float))
            print(f"\nwrote {args.json}")
        return 0

    datasets = [(d, d.name) for d in (args.data or ([FIVE_CORE] if FIVE_CORE.exists() else []))]
    if not args.no_synthetic:
        from chorus.shared.data.synthetic import generate_reviews

        f = args.cache_dir / f"synthetic-{args.reviews}-seed{args.seed}.tsv.gz"
        if not f.exists():
            print(f"generating {args.reviews:,} reviews into {f} (chorus data generate) ...")
            generate_reviews(f, args.reviews, seed=args.seed, progress=False)
        datasets.append((f, f"generated {args.reviews:,} reviews (chorus.shared.data.synthetic, seed {args.seed})"))
    if not datasets:
        p.error("no dataset: pass --data or allow the generated one")
    info = machine()
    print(
        f"machine: {info['cpus']} CPUs, {info['platform']}, Python {info['python']}, numpy {info['numpy']}, "
        f"scipy {info['scipy']}; load average {info['loadavg_at_start'][0]:.2f}"
    )
    results, baselines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        code = None
        if args.baseline:
            code = Path(tmp) / "baseline"
            code.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.baseline, "chorus"], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
        for k, (path, label) in enumerate(datasets):
            runs = [(results, None, label)]
            if code is not None:  # the baseline first, then this tree: the same steps, one after the other
                runs.insert(0, (baselines, code, f"{label}, baseline {args.baseline}"))
            for n, (into, code_dir, what) in enumerate(runs):
                out = Path(tmp) / f"{k}-{n}.json"
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(path),
                    what,
                    str(out),
                    "--queries",
                    str(args.queries),
                    "--literal-budget",
                    str(args.literal_budget),
                    "--seed",
                    str(args.seed),
                ] + (["--code", str(code_dir)] if code_dir else [])
                subprocess.run(cmd, check=True)
                into.append(json.loads(out.read_text()))
    if baselines:
        print_ab(baselines, results, args.baseline)
    if args.json:
        report = {"machine": info, "results": results} | ({"baseline": baselines} if baselines else {})
        args.json.write_text(json.dumps(report, indent=2, default=float))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

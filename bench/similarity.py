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

Usage::

    .venv/bin/python bench/similarity.py                       # 5-core + generated 1M (cached in --cache-dir)
    .venv/bin/python bench/similarity.py --data FILE --no-synthetic --queries 300 --json out.json
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
    extra["recommend_cosine_default"] = stats_ms([timed(index.recommend, u, 10, "cosine")[1] for u in users])
    extra["recommend_jaccard"] = stats_ms([timed(index.recommend, u, 10, "jaccard")[1] for u in users])
    pu, pi = rng.integers(0, r.n_users, 10_000), rng.integers(0, r.n_items, 10_000)
    extra["predict_batch_10000"] = stats_ms([timed(index.predict, pu, pi)[1] for _ in range(3)])
    out["other_queries"] = extra
    print("other online queries (k=10):")
    for name, st in extra.items():
        print(f"  {name:24s} mean {st['mean_ms']:9.3f} ms   p99 {st['p99_ms']:9.3f} ms   (n={st['n']})")
    return out


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
    p.add_argument("--worker", nargs=3, metavar=("PATH", "LABEL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:  # one dataset, in its own process
        path, label, out = args.worker
        res = run_dataset(Path(path), label, args.queries, args.literal_budget, args.seed)
        Path(out).write_text(json.dumps(res, default=float))
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
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (path, label) in enumerate(datasets):
            out = Path(tmp) / f"{k}.json"
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(path),
                label,
                str(out),
                "--queries",
                str(args.queries),
                "--literal-budget",
                str(args.literal_budget),
                "--seed",
                str(args.seed),
            ]
            subprocess.run(cmd, check=True)
            results.append(json.loads(out.read_text()))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2, default=float))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale benchmark: `chorus train` time per component and peak memory at several sizes of generated reviews, for
the numpy engine with 1 worker and with every core, and for the Spark engine, side by side.

For each size N (the project's generator, `chorus data generate`, seed 0) and each engine, one `chorus train`
process runs with the components asked for; the script reads the seconds of each component and the co-occurring
pairs of the neighbour table from the record it prints (`--json`), and polls the memory of the whole process tree
(the table and rating workers, Spark's JVM and its Python workers included) for its peak: the proportional set size
summed over the tree (PSS, from /proc/<pid>/smaps_rollup: a page shared by forked workers counts once, split
between them) and, beside it, the resident set size summed (RSS: a shared page counts once per process). It prints
one table with
both peaks and the peak PSS per review, the co-occurring pairs scored per second (the table's work, which grows
faster than N: see chorus/training/similarity/cooccur.py), the speed-up of all workers over one per component,
the machine's 1-minute load average at the start and the end of each run (timings depend on it; memory does not),
and the targets:

* 2 workers at least 1.7x faster than 1, per component (on a 2-core machine);
* Spark within 1.5x of the numpy engine with all workers, at 1M reviews;
* the Spark engine's neighbour table the same arrays as the numpy engine's;
* with all workers, 5M reviews within 3 GiB peak PSS and 10M within 6 GiB.

    .venv/bin/python bench/scale.py --sizes 1000000,5000000,10000000 [--engines numpy1,numpy,spark]
        [--components similarity,rating] [--spark-master local[2]|spark://HOST:PORT] [--timeout 3600]
        [--data-dir DIR] [--json bench/results/scale.json]

`spark` runs `--engine spark` at --spark-master (default local[<cores>]). A run that passes --timeout is reported
as such and the others go on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import machine, write_json  # noqa: E402
from chorus.shared.artifacts import MANIFEST, read_current  # noqa: E402
from chorus.shared.data.synthetic import generate_reviews  # noqa: E402
from chorus.shared.workers import available_cores  # noqa: E402

GIB = 2**30


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (those alive now)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return out


def tree_memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes summed over ``pid`` and its descendants, from /proc/<pid>/smaps_rollup."""
    pss = rss = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return pss, rss


def run(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd``; wall seconds, peak tree PSS and RSS, the 1-minute load average before and after, exit status and
    output (``timed_out`` past ``timeout``)."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True)
        peak_pss = peak_rss = 0
        timed_out = False
        while proc.poll() is None:
            pss, rss = tree_memory(proc.pid)
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            if time.perf_counter() - start > timeout:
                timed_out = True
                proc.kill()
                break
            time.sleep(0.2)
        proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, log = out.read(), err.read()
    return {
        "seconds": time.perf_counter() - start,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "peak_pss_bytes": peak_pss,
        "peak_rss_bytes": peak_rss,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "stdout": stdout,
        "log": log + stdout,
    }


def components_of(stdout: str) -> dict[str, dict]:
    """Each trained component's seconds and summary, from the record `chorus train --json` prints."""
    try:
        record = json.loads(stdout[stdout.index("{") :])
    except ValueError:  # no record: the run failed or was stopped
        return {}
    return {name: {"seconds": float(s["seconds"]), "summary": s} for name, s in record.get("components", {}).items()}


def array_digests(artifacts: Path) -> dict[str, dict[str, str]]:
    """sha256 of every array of the served version, by component (from its manifest)."""
    version = artifacts / read_current(artifacts)
    manifest = json.loads((version / MANIFEST).read_text())
    return {c: {n: f["sha256"] for n, f in meta["files"].items()} for c, meta in manifest["components"].items()}


def engine_args(engine: str, cores: int, spark_master: str | None) -> list[str]:
    if engine == "numpy1":
        return ["--workers", "1"]
    if engine == "numpy":
        return ["--workers", str(cores)]
    if engine == "spark":
        return ["--engine", "spark", "--spark-master", spark_master or f"local[{cores}]", "--workers", str(cores)]
    raise SystemExit(f"unknown engine {engine!r}: numpy1, numpy or spark")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,5000000,10000000", help="comma-separated review counts")
    ap.add_argument("--engines", default="numpy1,numpy,spark", help="numpy1 (1 worker), numpy (all), spark")
    ap.add_argument("--components", default="similarity,rating")
    ap.add_argument("--spark-master", help="where the spark engine runs (default local[<cores>])")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per `chorus train` run")
    ap.add_argument("--data-dir", help="keep the generated files here (default: a temporary folder)")
    ap.add_argument("--json")
    args = ap.parse_args()
    cores = available_cores()
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = args.engines.split(",")
    rows = []
    digests: dict[tuple[int, str], dict[str, dict[str, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="chorus-scale-") as tmp:
        folder = Path(args.data_dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            data = folder / f"reviews-{n}.tsv.gz"
            if not data.exists():
                t = time.perf_counter()
                generate_reviews(data, n, seed=0, progress=False)
                print(f"generated {n:,} reviews in {time.perf_counter() - t:.0f} s", flush=True)
            for engine in engines:
                artifacts = Path(tmp) / f"artifacts-{n}-{engine}"
                cmd = [sys.executable, "-m", "chorus.cli", "train", "--data", str(data), "--artifacts", str(artifacts)]
                cmd += ["--components", args.components, "--json", *engine_args(engine, cores, args.spark_master)]
                r = run(cmd, args.timeout)
                parts = components_of(r["stdout"])
                measured = ("seconds", "load_average", "peak_pss_bytes", "peak_rss_bytes", "timed_out")
                row = {"reviews": n, "engine": engine, **{k: r[k] for k in measured}}
                row["pss_bytes_per_review"] = r["peak_pss_bytes"] / n
                row["ok"] = r["returncode"] == 0 and not r["timed_out"]
                row["components"] = {k: v["seconds"] for k, v in parts.items()}
                sim = parts.get("similarity", {}).get("summary", {})
                if sim.get("pairs"):
                    row["pairs"] = sim["pairs"]
                    row["pairs_per_second"] = sim["pairs"] / parts["similarity"]["seconds"]
                if row["ok"]:
                    digests[(n, engine)] = array_digests(artifacts)
                    # kept in the JSON, so that runs on different masters can be compared afterwards
                    row["similarity_sha256"] = digests[(n, engine)].get("similarity")
                if not row["ok"]:
                    row["log_tail"] = r["log"][-2000:]
                rows.append(row)
                comp = "  ".join(f"{k} {v:7.1f} s" for k, v in row["components"].items())
                pps = f"  {row['pairs_per_second'] / 1e6:6.2f} M pairs/s" if "pairs_per_second" in row else ""
                state = "ok" if row["ok"] else ("TIMED OUT" if r["timed_out"] else f"FAILED ({r['returncode']})")
                print(
                    f"{n:>11,} {engine:<7} {row['seconds']:8.1f} s  peak PSS {row['peak_pss_bytes'] / GIB:6.2f} GiB "
                    f"(RSS {row['peak_rss_bytes'] / GIB:6.2f} GiB, {row['pss_bytes_per_review']:5.0f} B/review)  "
                    f"{comp}{pps}  load {r['load_average'][0]:.1f}-{r['load_average'][1]:.1f}  {state}",
                    flush=True,
                )
                if not row["ok"]:
                    print(row["log_tail"], file=sys.stderr)
    print(f"machine: {machine()}; {cores} cores available to this process")
    targets = []
    for n in sizes:
        by = {r["engine"]: r for r in rows if r["reviews"] == n and r["ok"]}
        if "numpy1" in by and "numpy" in by:
            for comp, one in by["numpy1"]["components"].items():
                many = by["numpy"]["components"].get(comp)
                if many:
                    ratio = one / many
                    targets.append((f"{n:,}: {comp} {cores} workers vs 1: {ratio:.2f}x", ratio >= 1.7))
        if (n, "numpy1") in digests and (n, "numpy") in digests:
            one, many = digests[(n, "numpy1")], digests[(n, "numpy")]
            for comp in one:
                same = one[comp] == many.get(comp)
                targets.append((f"{n:,}: {comp} arrays with {cores} workers identical to 1 worker's", same))
        if "numpy" in by and "spark" in by and n == 1_000_000:
            ratio = by["spark"]["seconds"] / by["numpy"]["seconds"]
            text = f"1M: spark {ratio:.2f}x the numpy engine's time with {cores} workers (target 1.5x)"
            targets.append((text, ratio <= 1.5))
        if (n, "numpy") in digests and (n, "spark") in digests:
            same = digests[(n, "numpy")].get("similarity") == digests[(n, "spark")].get("similarity")
            targets.append((f"{n:,}: spark neighbour table identical to the numpy engine's", same))
        limit = {5_000_000: 3, 10_000_000: 6}.get(n)
        if limit and "numpy" in by:
            gib = by["numpy"]["peak_pss_bytes"] / GIB
            targets.append((f"{n:,} numpy, {cores} workers: peak PSS {gib:.2f} GiB (target {limit} GiB)", gib <= limit))
    for text, met in targets:
        print(f"  {text}: {'met' if met else 'NOT met'}")
    write_json(args.json, {"machine": machine(), "cores": cores, "runs": rows, "targets": targets})
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

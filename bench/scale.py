"""Scale benchmark: `chorus train` time per component and peak memory at several sizes of generated reviews, for
the numpy engine with 1 worker and with every core, and for the Spark engine in local[*], side by side.

For each size N (the project's generator, `chorus data generate`, seed 0) and each engine, one `chorus train`
process runs with the components asked for; the script reads the seconds of each component and the co-occurring
pairs of the neighbour table from its log, and polls the resident memory of the whole process tree (the
forked table workers and Spark's JVM included) for its peak. It prints one table, the co-occurring pairs scored
per second (the table's work, which grows faster than N: see chorus/training/similarity/cooccur.py), the speed-up of
all workers over one per component, and the targets:

* 2 workers at least 1.7x faster than 1, per component (on a 2-core machine);
* the neighbour table for 5M reviews within 300 s with all workers;
* the 10M run within 24 GiB.

    .venv/bin/python bench/scale.py --sizes 1000000,5000000,10000000 [--engines numpy1,numpy,spark]
        [--components similarity,rating] [--timeout 3600] [--json bench/results/scale.json]

A run that passes --timeout is reported as such and the others go on.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
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

TRAINED = re.compile(r"^trained (\w+) in ([\d.]+) s: (\{.*\})$")
GIB = 2**30


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def run(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd``; wall seconds, peak tree RSS, exit status and output (``timed_out`` past ``timeout``)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        peak, timed_out = 0, False
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            if time.perf_counter() - start > timeout:
                timed_out = True
                proc.kill()
                break
            time.sleep(0.2)
        proc.wait()
        out.seek(0)
        log = out.read()
    return {
        "seconds": time.perf_counter() - start,
        "peak_bytes": peak,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "log": log,
    }


def components_of(log: str) -> dict[str, dict]:
    out = {}
    for line in log.splitlines():
        m = TRAINED.match(line.strip())
        if m:
            out[m.group(1)] = {"seconds": float(m.group(2)), "summary": ast.literal_eval(m.group(3))}
    return out


def array_digests(artifacts: Path) -> dict[str, dict[str, str]]:
    """sha256 of every array of the served version, by component (from its manifest)."""
    version = artifacts / read_current(artifacts)
    manifest = json.loads((version / MANIFEST).read_text())
    return {c: {n: f["sha256"] for n, f in meta["files"].items()} for c, meta in manifest["components"].items()}


def engine_args(engine: str, cores: int) -> list[str]:
    if engine == "numpy1":
        return ["--workers", "1"]
    if engine == "numpy":
        return ["--workers", str(cores)]
    if engine == "spark":
        return ["--engine", "spark", "--spark-master", "local[*]", "--workers", str(cores)]
    raise SystemExit(f"unknown engine {engine!r}: numpy1, numpy or spark")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,5000000,10000000", help="comma-separated review counts")
    ap.add_argument("--engines", default="numpy1,numpy,spark", help="numpy1 (1 worker), numpy (all), spark")
    ap.add_argument("--components", default="similarity,rating")
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
                cmd += ["--components", args.components, *engine_args(engine, cores)]
                r = run(cmd, args.timeout)
                parts = components_of(r["log"])
                row = {"reviews": n, "engine": engine, **{k: r[k] for k in ("seconds", "peak_bytes", "timed_out")}}
                row["ok"] = r["returncode"] == 0 and not r["timed_out"]
                row["components"] = {k: v["seconds"] for k, v in parts.items()}
                sim = parts.get("similarity", {}).get("summary", {})
                if sim.get("pairs"):
                    row["pairs"] = sim["pairs"]
                    row["pairs_per_second"] = sim["pairs"] / parts["similarity"]["seconds"]
                if row["ok"] and engine.startswith("numpy"):
                    digests[(n, engine)] = array_digests(artifacts)
                if not row["ok"]:
                    row["log_tail"] = r["log"][-2000:]
                rows.append(row)
                comp = "  ".join(f"{k} {v:7.1f} s" for k, v in row["components"].items())
                pps = f"  {row['pairs_per_second'] / 1e6:6.2f} M pairs/s" if "pairs_per_second" in row else ""
                state = "ok" if row["ok"] else ("TIMED OUT" if r["timed_out"] else f"FAILED ({r['returncode']})")
                print(
                    f"{n:>11,} {engine:<7} {row['seconds']:8.1f} s  peak {row['peak_bytes'] / GIB:6.2f} GiB  "
                    f"{comp}{pps}  {state}",
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
        if n == 5_000_000 and "numpy" in by:
            sim = by["numpy"]["components"].get("similarity")
            if sim:
                targets.append((f"5M neighbour table with all workers: {sim:.0f} s (target 300 s)", sim <= 300))
        if n == 10_000_000:
            for engine, r in by.items():
                gib = r["peak_bytes"] / GIB
                targets.append((f"10M {engine}: peak {gib:.1f} GiB (target 24 GiB)", gib <= 24))
    for text, met in targets:
        print(f"  {text}: {'met' if met else 'NOT met'}")
    write_json(args.json, {"machine": machine(), "cores": cores, "runs": rows, "targets": targets})
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

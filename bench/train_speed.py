"""Training speed: `chorus train` end to end with each ``--workers`` count on one file, side by side.

For each worker count the command runs as a child process (the user's command, nothing in-process), and the
script prints its wall seconds, the CPU seconds of it and of every process it started (user + system, from the
kernel's accounting of waited-for children), the load average before and after (the machine may be shared:
wall figures are only comparable at a similar load), each component's seconds as the command logs them, and the
speed-up of every count over the first. It then checks that every count wrote the same arrays (the sha256 of each
array file of each component, from the manifests).

    .venv/bin/python bench/train_speed.py --data FILE [--workers 1 2] [--components ranking] [--json out.json]
    .venv/bin/python bench/train_speed.py --reviews 250000 --head 100000   # a generated file's first rows

``--reviews N`` generates N reviews (``chorus.shared.data.synthetic.generate_reviews``) and ``--head M`` keeps
the first M of them: a file with more items per review than a whole generated file of M reviews (the first
100,000 of 250,000 hold about 9,500 items).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import machine, write_json  # noqa: E402
from chorus.shared.artifacts import ArtifactStore  # noqa: E402
from chorus.shared.data.synthetic import generate_reviews  # noqa: E402

TRAINED = re.compile(r"^trained (\w+) in ([\d.]+) s", re.MULTILINE)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(data: Path, artifacts: Path, workers: int, components: str | None, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "chorus.cli", "train", "--data", str(data), "--artifacts", str(artifacts)]
    cmd += ["--workers", str(workers), "--seed", "0"] + (["--components", components] if components else [])
    load_before = os.getloadavg()[0]
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"chorus train --workers {workers} failed:\n{proc.stdout}\n{proc.stderr}")
    manifest = ArtifactStore(artifacts).open(verify=True).manifest
    arrays = {c: {a: f["sha256"] for a, f in m["files"].items()} for c, m in manifest["components"].items()}
    return {
        "workers": workers,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "components": {name: float(s) for name, s in TRAINED.findall(proc.stdout)},
        "arrays": arrays,
        "log": proc.stdout,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="train on this file")
    ap.add_argument("--reviews", type=int, help="generate this many reviews instead")
    ap.add_argument("--head", type=int, help="with --reviews: keep only the first this many")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--components", help="comma-separated components (default: all)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if (args.data is None) == (args.reviews is None):
        ap.error("give --data or --reviews")
    with tempfile.TemporaryDirectory(prefix="chorus-train-speed-") as tmp:
        data = args.data
        if data is None:
            data = generate_reviews(Path(tmp) / "all.tsv", args.reviews, seed=0, progress=False)
            if args.head:
                with open(data) as src, open(Path(tmp) / "head.tsv", "w") as dst:
                    for n, line in enumerate(src):
                        if n > args.head:  # the header line, then --head reviews
                            break
                        dst.write(line)
                data = Path(tmp) / "head.tsv"
        print(f"{machine()}\ntraining on {data}", flush=True)
        rows = []
        for workers in args.workers:
            row = run(data, Path(tmp) / f"artifacts-{workers}", workers, args.components, args.timeout)
            rows.append(row)
            parts = "  ".join(f"{c} {s:.1f}" for c, s in row["components"].items())
            print(
                f"--workers {workers}: {row['seconds']:7.1f} s wall, {row['cpu_seconds']:7.1f} CPU-s, load "
                f"{row['load_before']:.1f} -> {row['load_after']:.1f}; components (s): {parts}",
                flush=True,
            )
        first = rows[0]
        for row in rows[1:]:
            print(
                f"--workers {row['workers']} against {first['workers']}: "
                f"{first['seconds'] / row['seconds']:.2f}x wall; arrays "
                f"{'identical' if row['arrays'] == first['arrays'] else 'DIFFERENT'}"
            )
        write_json(args.json, {"machine": machine(), "data": str(data), "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ingest benchmark: generate N reviews (Amazon TSV, gzip), then time `chorus data stats` on them.

Prints rows per second and the peak resident memory of the `chorus data stats` process.
Targets: at least 250,000 rows/s and under 1.5 GB peak for 1M rows on a 2-core machine.

    .venv/bin/python bench/ingest.py --reviews 1000000 [--repeat 3] [--json bench/results/ingest.json]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, run_measured, write_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reviews", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of `chorus data stats` (best and median shown)")
    ap.add_argument("--data", help="use this existing file instead of generating one")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        if args.data:
            path = Path(args.data)
            gen_seconds = None
        else:
            path = Path(tmp) / "reviews.tsv.gz"
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "chorus.cli",
                    "data",
                    "generate",
                    "--out",
                    str(path),
                    "--reviews",
                    str(args.reviews),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                capture_output=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
            gen_seconds = time.perf_counter() - t0
            print(f"generated {args.reviews:,} reviews in {gen_seconds:.1f} s ({path.stat().st_size / 1e6:.1f} MB gz)")
        runs = []
        for _ in range(args.repeat):
            proc, seconds, peak_mb = run_measured(
                [sys.executable, "-m", "chorus.cli", "data", "stats", "--data", str(path), "--json"],
                cwd=Path(__file__).resolve().parent.parent,
                timeout=args.timeout,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            stats = json.loads(proc.stdout)
            runs.append({"seconds": seconds, "rows_per_second": stats["reviews"] / seconds, "peak_mb": peak_mb})
        runs.sort(key=lambda r: r["seconds"])
        best, median = runs[0], runs[len(runs) // 2]
        print(f"machine: {machine()}")
        print(
            f"`chorus data stats --json` on {stats['reviews']:,} rows ({stats['users']:,} users, "
            f"{stats['items']:,} items), whole process incl. interpreter start:"
        )
        print(f"  best   {best['seconds']:.2f} s  {best['rows_per_second']:,.0f} rows/s")
        print(f"  median {median['seconds']:.2f} s  {median['rows_per_second']:,.0f} rows/s")
        print(f"  peak memory {max(r['peak_mb'] for r in runs):,.0f} MB")
        ok = median["rows_per_second"] >= 250_000 and max(r["peak_mb"] for r in runs) < 1536
        print(f"  target (>= 250,000 rows/s, < 1.5 GB): {'met' if ok else 'NOT met'}")
        write_json(
            args.json,
            {
                "machine": machine(),
                "reviews": stats["reviews"],
                "generate_seconds": gen_seconds,
                "runs": runs,
                "target_met": ok,
                "cpu_count": os.cpu_count(),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

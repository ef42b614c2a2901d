"""Full-training benchmark: generate N reviews, then time `chorus train` (both components) on them.

Prints the wall time of each stage as `chorus train` logs it, the total, and the peak memory of the process.
Target: under 2 minutes for 1M generated reviews on the 2-core machine.

    .venv/bin/python bench/train.py --reviews 1000000 [--json bench/results/train.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import machine, run_measured, write_json  # noqa: E402
from chorus.shared.artifacts import ArtifactStore  # noqa: E402
from chorus.shared.data.synthetic import generate_reviews  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reviews", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="train on this file instead of generating one")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="chorus-train-bench-") as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "reviews.tsv.gz"
        if not args.data:
            t0 = time.perf_counter()
            generate_reviews(data, args.reviews, seed=args.seed, progress=False)
            print(f"generated {args.reviews:,} reviews in {time.perf_counter() - t0:.1f} s")
        artifacts = Path(tmp) / "artifacts"
        proc, seconds, peak_mb = run_measured(
            [
                sys.executable,
                "-m",
                "chorus.cli",
                "train",
                "--data",
                str(data),
                "--artifacts",
                str(artifacts),
                "--seed",
                str(args.seed),
            ],
            cwd=ROOT,
            timeout=args.timeout,
        )
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        print(proc.stdout.rstrip())
        version = ArtifactStore(artifacts).open()
        test = version.component_meta("rating")["metrics"].get("test", {})
        print(f"machine: {machine()}")
        print(f"`chorus train` (data + similarity + rating): {seconds:.1f} s, peak memory {peak_mb:,.0f} MB")
        for name, m in test.items():
            print(f"  rating test RMSE {name:<7} {m['rmse']:.4f}")
        ok = seconds < 120
        print(f"  target (< 120 s): {'met' if ok else 'NOT met'}")
        write_json(
            args.json,
            {
                "machine": machine(),
                "reviews": args.reviews,
                "seconds": seconds,
                "peak_mb": peak_mb,
                "log": proc.stdout,
                "test": test,
                "target_met": ok,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Loader limits benchmark: time and peak memory of `chorus data stats` on a gzip holding one huge line, and the
time to parse one long JSON line as it grows (linear, where joining the carried part of a line to every new block
made it quadratic).

Runs, each in its own `chorus data stats --json` process (peak resident memory from /proc):

1. a gzip holding one valid row and one line of ``--line-mib`` MiB (default 1 GiB), as is: the decompression-ratio
   guard stops it;
2. the same file with the guard off (``CHORUS_MAX_DECOMPRESSION_RATIO=0``): the line streams past, skipped and
   counted as ``line_too_long``;
3. one JSON record holding a review text of each of ``--parse-mib`` sizes, with the line cap raised so that it is
   parsed: seconds per size.

Targets: runs 1 and 2 end with a clear message in under 30 s at under 500 MB peak.

    .venv/bin/python bench/loaders.py [--line-mib 1024] [--parse-mib 32 64 128] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, run_measured, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROW = b'{"reviewerID": "u1", "asin": "i1", "overall": 5, "unixReviewTime": 1400000000}\n'
LONG_START = b'{"reviewerID": "u2", "asin": "i2", "overall": 4, "unixReviewTime": 1400000000, "reviewText": "'


def write_long_line(path: Path, mib: int) -> float:
    """One valid row, then one JSON record of ``mib`` MiB on one line, gzip level 1, written in 8 MiB pieces;
    returns the seconds taken."""
    start = time.perf_counter()
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    piece = (b"a fine instrument, " * (1 << 19))[: 8 << 20]
    with open(path, "wb") as f:
        f.write(z.compress(ROW + LONG_START))
        for _ in range(mib // 8):
            f.write(z.compress(piece))
        f.write(z.compress(b'"}\n'))
        f.write(z.flush())
    return time.perf_counter() - start


def stats(path: Path, env: dict[str, str], timeout: float) -> dict:
    cmd = [sys.executable, "-m", "chorus.cli", "data", "stats", "--data", str(path), "--json"]
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        proc, seconds, peak_mb = run_measured(cmd, cwd=ROOT, timeout=timeout)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out = {"seconds": round(seconds, 2), "peak_mb": round(peak_mb), "exit": proc.returncode}
    if proc.returncode == 0:
        out["skipped_by_reason"] = json.loads(proc.stdout)["skipped_by_reason"]
    else:
        out["message"] = proc.stderr.strip().splitlines()[-1][:200]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--line-mib", type=int, default=1024, help="size of the huge line (MiB)")
    ap.add_argument("--parse-mib", type=int, nargs="*", default=[32, 64, 128], help="JSON line sizes to parse (MiB)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds each run may take")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    results: dict = {"machine": machine()}
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        path = Path(tmp) / "one-line.json.gz"
        gen = write_long_line(path, args.line_mib)
        print(
            f"gzip holding one {args.line_mib:,} MiB line: {path.stat().st_size / 1e6:.1f} MB, written in {gen:.1f} s"
        )
        guarded = stats(path, {}, args.timeout)
        print(f"  as is (ratio guard):       {guarded}")
        streamed = stats(path, {"CHORUS_MAX_DECOMPRESSION_RATIO": "0"}, args.timeout)
        print(f"  ratio guard off (streams): {streamed}")
        ok = all(r["seconds"] < 30 and r["peak_mb"] < 500 for r in (guarded, streamed))
        print(f"  target (< 30 s, < 500 MB, a clear message): {'met' if ok else 'NOT met'}")
        results.update(line_mib=args.line_mib, guarded=guarded, streamed=streamed, target_met=ok)

        parse = []
        print("parsing one JSON line (line cap raised), whole process:")
        for mib in args.parse_mib:
            path = Path(tmp) / f"parse-{mib}.json.gz"
            write_long_line(path, mib)
            run = stats(
                path, {"CHORUS_MAX_DECOMPRESSION_RATIO": "0", "CHORUS_MAX_LINE_BYTES": str(2 * mib << 20)}, args.timeout
            )
            run["mib"] = mib
            parse.append(run)
            print(
                f"  {mib:>5} MiB: {run['seconds']:.2f} s, {run['peak_mb']} MB peak, "
                f"skipped {run.get('skipped_by_reason')}"
            )
            path.unlink()
        results["parse"] = parse
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

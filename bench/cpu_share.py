"""How many cores this session can get right now: 1, then N processes spin for a few seconds each and the CPU
seconds they got are printed. Run it before timing ``--workers N`` against ``--workers 1``.

Linux with ``kernel.sched_autogroup_enabled = 1`` (this project's machine) shares the CPU fairly between sessions
(autogroups), not between processes: while another session keeps a core busy, a session's N processes together get
about the share one process would, so a second worker cannot speed anything up and a speed-up measured then says
nothing about idle cores.

    .venv/bin/python bench/cpu_share.py [--workers 2] [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path


def spin(out: multiprocessing.Queue, seconds: float) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        pass
    out.put(time.process_time() - cpu)


def cores_got(n: int, seconds: float) -> float:
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=spin, args=(out, seconds)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return sum(out.get() for _ in procs) / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    state = autogroup.read_text().strip() if autogroup.exists() else "n/a"
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "n/a"
    one, many = cores_got(1, args.seconds), cores_got(args.workers, args.seconds)
    print(f"load {load}, sched_autogroup_enabled {state}")
    print(
        f"1 process got {one:.2f} cores; {args.workers} processes got {many:.2f} cores in all: a speed-up of at most "
        f"{many / one:.2f}x is available now"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

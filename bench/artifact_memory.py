"""What loading artifacts into private memory costs, against memory-mapping them as Chorus did before.

For each service (similarity, rating) and each way of loading (``private``: what the services do, every array read
into the process's own memory and checked; ``mmap``: ``np.load(mmap_mode="r")``, the old way, which a file
truncated on disk turned into a SIGBUS), a child process loads the current version of ``--artifacts`` exactly as
the service's build does and prints: the bytes of the component files, the seconds to load, the resident memory,
and how much of it is the process's own (anonymous) memory, which no other process or the page cache shares.

    .venv/bin/python bench/artifact_memory.py --artifacts DIR [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, write_json  # noqa: E402

CHILD = r"""
import json, sys, time
import numpy as np
from chorus.shared import artifacts

service, mode, root = sys.argv[1:4]
if mode == "mmap":  # the loader before arrays were private copies
    def array(self, component, name):
        info = self.component_meta(component)["files"][name]
        mapped = "r" if int(np.prod(info["shape"])) > 0 else None
        return np.load(self.path / info["path"], mmap_mode=mapped, allow_pickle=False)
    artifacts.Version.array = array
    artifacts.Version.load = lambda self, components: None
if service == "similarity":
    from chorus.services.similarity.model import load_model as build
    components = ["data", "similarity"]
else:
    from chorus.services.rating.service import load_service as build
    components = ["data", "rating"]

def memory():
    fields = {}
    for line in open("/proc/self/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return fields

store = artifacts.ArtifactStore(root)
name = store.current()
before = memory()
start = time.perf_counter()
version = store.open(name, components=components, verify=True, load=(mode == "private"))
model = build(version)
seconds = time.perf_counter() - start
after = memory()
files = sum(info["bytes"] for c in components for info in version.component_meta(c)["files"].values())
print(json.dumps({
    "service": service, "mode": mode, "files_mb": round(files / 2**20, 1), "load_seconds": round(seconds, 2),
    "rss_mb": round(after["Rss"], 1), "anonymous_mb": round(after["Anonymous"], 1),
    "anonymous_growth_mb": round(after["Anonymous"] - before["Anonymous"], 1),
    "file_backed_mb": round(after["Rss"] - after["Anonymous"], 1),
}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", required=True, help="an artifact root with a current version")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    runs = []
    for service in ("similarity", "rating"):
        for mode in ("mmap", "private"):
            done = subprocess.run(
                [sys.executable, "-c", CHILD, service, mode, args.artifacts],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(
                f"{service:<10} {mode:<7} files {run['files_mb']:>7.1f} MB  load {run['load_seconds']:>5.2f} s  "
                f"RSS {run['rss_mb']:>7.1f} MB (own {run['anonymous_mb']:.1f}, +{run['anonymous_growth_mb']:.1f} "
                f"while loading; file-backed {run['file_backed_mb']:.1f})"
            )
    write_json(args.json, {"machine": machine(), "artifacts": args.artifacts, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

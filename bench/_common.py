"""Helpers the benchmark scripts share: the machine line, JSON output, peak memory of a child."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu or platform.processor() or 'unknown cpu'}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    )


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2))
        print(f"wrote {path}", file=sys.stderr)


def run_measured(cmd: list[str], cwd: Path, timeout: float) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd``; return (completed process, wall seconds, peak resident MB of the child itself).

    The peak is the child's own VmHWM, polled from /proc while it runs: ``ru_maxrss`` of children would also
    count the forked copy of this (possibly large) process made before ``exec``.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def drain(stream, sink):
        for line in stream:
            sink.append(line)

    threads = [
        threading.Thread(target=drain, args=(proc.stdout, out_chunks), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, err_chunks), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        while proc.poll() is None:
            if time.perf_counter() - start > timeout:
                proc.kill()
                raise TimeoutError(f"{cmd[:4]} ran longer than {timeout} s")
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for t in threads:
            t.join(5)
    seconds = time.perf_counter() - start
    done = subprocess.CompletedProcess(cmd, proc.returncode, "".join(out_chunks), "".join(err_chunks))
    return done, seconds, peak_kb / 1024


def train_demo(work: Path, data: str | Path | None, reviews: int, seed: int):
    """Train ``data`` (or ``reviews`` freshly generated demo reviews) into ``work/artifacts``; return the artifact
    root, the dataset, and its item ids from the most reviewed down (ties by id)."""
    import numpy as np

    from chorus.shared.artifacts import ArtifactStore
    from chorus.shared.data.component import load_data_component
    from chorus.shared.data.synthetic import generate_reviews
    from chorus.training.train import parse_components, train

    if data is None:
        data = work / "demo.tsv.gz"
        generate_reviews(data, reviews, seed=seed, progress=False)
    root = work / "artifacts"
    train(data, root, parse_components(None), seed=seed, progress=False, log=lambda _m: None)
    dataset = load_data_component(ArtifactStore(root).open(components=["data"]))
    order = np.lexsort((dataset.item_ids, -np.bincount(dataset.item, minlength=dataset.n_items)))
    return root, dataset, [str(x) for x in dataset.item_ids[order]]

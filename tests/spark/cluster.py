"""A Spark standalone cluster on loopback for the tests: one master and its workers, each started with pyspark's own
launcher (``bin/spark-class`` of the installed ``pyspark`` package, which ships no ``sbin/start-*.sh``) as a
child process in its own session, and all of them stopped on the way out, failure or not."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chorus.launcher import free_port


@dataclass
class Cluster:
    """A running standalone cluster: its master URL and what it needs to be stopped."""

    url: str
    ui: str
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def alive_workers(self) -> int:
        """Workers the master lists as ALIVE (its web UI's JSON), 0 while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.ui}/json/", timeout=2) as answer:
                state = json.load(answer)
        except OSError:
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in sorted(self.logs.glob("*.log"))
        )


def spark_env() -> dict[str, str]:
    """The environment of the cluster's processes and of a driver talking to it: loopback only, this Python on the
    executors, pyspark's own Spark."""
    import pyspark

    home = Path(pyspark.__file__).parent
    return {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in processes:  # each started in its own session: its group is it and its children
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def standalone_cluster(
    folder: Path, workers: int = 2, cores: int = 1, memory: str = "2g", timeout: float = 120
) -> Iterator[Cluster]:
    """A master and ``workers`` workers (``cores`` cores and ``memory`` each) on 127.0.0.1, every port free and
    chosen here; waits up to ``timeout`` seconds until every worker is registered. Logs go to ``folder``."""
    env = spark_env()
    spark_class = str(Path(env["SPARK_HOME"]) / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", folder)
    folder.mkdir(parents=True, exist_ok=True)

    def start(name: str, args: list[str]) -> None:
        with (folder / f"{name}.log").open("wb") as log:
            cluster.processes.append(
                subprocess.Popen(
                    [spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    try:
        master = ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)]
        start("master", ["org.apache.spark.deploy.master.Master", *master])
        for w in range(workers):
            work = folder / f"worker-{w}"
            args = ["--host", "127.0.0.1", "--port", str(free_port()), "--webui-port", str(free_port())]
            args += ["--cores", str(cores), "--memory", memory, "--work-dir", str(work), cluster.url]
            start(f"worker-{w}", ["org.apache.spark.deploy.worker.Worker", *args])
        deadline = time.monotonic() + timeout
        while cluster.alive_workers() < workers:
            dead = [p.args for p in cluster.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"exited: {dead}" if dead else f"not all {workers} workers registered in {timeout:.0f} s"
                raise RuntimeError(f"standalone cluster did not start ({why})\n{cluster.log_tail()}")
            time.sleep(0.5)
        yield cluster
    finally:
        _stop(cluster.processes)

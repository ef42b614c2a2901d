"""Slow request bodies against the whole system: do they lock a normal client out?

It trains generated demo data (or ``--data``) into a temporary directory, starts the three real processes with
``chorus up``'s launcher (Chorus's HTTP protocol and limits, default settings unless set in the environment), and
measures a normal client in two phases:

1. **baseline**: for ``--baseline-seconds`` (10) the client alone.
2. **attack**: for ``--seconds`` (45, longer than the default body timeout of 30 s) ``--senders`` connections
   (64, as many as ``CHORUS_MAX_IN_FLIGHT`` by default) each send the head of a ``POST /v1/predict`` that announces
   a 64 KiB body, then one body byte per second; a sender the gateway drops connects again at once, as an attacker
   would. Meanwhile the client goes on.

The client is one keep-alive connection sending one request at a time: ``GET`` similar items and item facts of
the most reviewed items (every other one with ``Cache-Control: no-cache``, so it reaches the similarity service),
``GET /readyz`` one request in ten, and a ``POST /v1/predict`` of 10 pairs one request in ten (a fast body). It
prints, per phase, the answers by status and the ``GET`` latencies (p50, p99, max), and what became of the slow
senders. Target: during the attack the client's ``GET`` requests all answer 200 with p99 under 1 s.

Usage::

    python bench/slowloris.py
    python bench/slowloris.py --senders 200 --seconds 60 --json slowloris.json

Everything runs on this machine, the load generator included; the run, training included, is bounded by
``--max-seconds`` and every process is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import machine, train_demo, write_json  # noqa: E402
from bench.serve import stop_after  # noqa: E402

ANNOUNCED = 65536
"""Body length each slow sender announces (it sends one byte of it per second)."""


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: chorus"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return int(lines[0].split()[1]), await reader.readexactly(length)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_mix(items: list[str], users: list[str]) -> list[tuple[str, bytes]]:
    """(kind, request) in a fixed order: GETs of similar items and item facts, readiness, a small POST."""
    mix: list[tuple[str, bytes]] = []
    pairs = json.dumps({"pairs": [{"user_id": u, "item_id": i} for u, i in zip(users[:10], items[:10], strict=False)]})
    for n, item in enumerate(items):
        fresh = {"Cache-Control": "no-cache"} if n % 2 else {}
        path = f"/v1/items/{item}/similar?k=10" if n % 3 else f"/v1/items/{item}"
        mix.append(("GET", request_bytes("GET", path, fresh)))
        if n % 10 == 4:
            mix.append(("GET", request_bytes("GET", "/readyz")))
        if n % 10 == 9:
            mix.append(("POST", request_bytes("POST", "/v1/predict", body=pairs.encode())))
    return mix


async def normal_client(host: str, port: int, mix: list[tuple[str, bytes]], seconds: float) -> dict:
    """One keep-alive connection, one request at a time, for ``seconds``; reconnects when the server closes."""
    statuses: dict[str, dict[int, int]] = {"GET": {}, "POST": {}}
    latencies: list[float] = []
    broken = 0
    reader, writer = await asyncio.open_connection(host, port)
    end = time.monotonic() + seconds
    n = 0
    try:
        while time.monotonic() < end:
            kind, raw = mix[n % len(mix)]
            n += 1
            start = time.monotonic()
            try:
                writer.write(raw)
                status, _ = await asyncio.wait_for(read_response(reader), 10)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                broken += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if kind == "GET":
                latencies.append(time.monotonic() - start)
            statuses[kind][status] = statuses[kind].get(status, 0) + 1
    finally:
        writer.close()
    return {
        "requests": n,
        "broken": broken,
        "get_statuses": dict(sorted(statuses["GET"].items())),
        "post_statuses": dict(sorted(statuses["POST"].items())),
        "get_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "get_p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None,
        "get_max_ms": 1000 * max(latencies) if latencies else None,
    }


async def slow_sender(host: str, port: int, stop: asyncio.Event, tally: Counter[str]) -> None:
    """Send a POST head, then one body byte per second, until dropped; then connect again, until ``stop``."""
    head = request_bytes("POST", "/v1/predict", body=b" " * ANNOUNCED)[:-ANNOUNCED]  # the head alone
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            tally["refused_connections"] += 1
            await asyncio.sleep(0.1)
            continue
        tally["connections"] += 1
        try:
            writer.write(head)
            sent = 0
            while not stop.is_set() and sent < ANNOUNCED:
                with contextlib.suppress(asyncio.TimeoutError):
                    answer = await asyncio.wait_for(reader.read(65536), 1.0)
                    if answer.startswith(b"HTTP/1.1 "):
                        tally[f"answered_{answer[9:12].decode()}"] += 1
                    else:
                        tally["closed_without_answer"] += 1
                    break
                writer.write(b" ")
                await writer.drain()
                sent += 1
        except OSError:
            tally["reset"] += 1
        finally:
            writer.close()


async def attack(host: str, port: int, senders: int, mix, seconds: float) -> dict:
    stop = asyncio.Event()
    tally: Counter[str] = Counter()
    tasks = [asyncio.create_task(slow_sender(host, port, stop, tally)) for _ in range(senders)]
    await asyncio.sleep(2.0)  # every sender has sent its head and its first bytes
    client = await normal_client(host, port, mix, seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"client": client, "senders": senders, "slow_senders": dict(sorted(tally.items()))}


def start_system(args, stack: contextlib.ExitStack):
    import numpy as np

    from chorus.launcher import Topology, free_port

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chorus-slowloris-")))
    started = time.monotonic()
    root, dataset, by_reviews = train_demo(work, args.data, args.reviews, args.seed)
    rng = np.random.default_rng(args.seed)
    users = [str(x) for x in rng.choice(dataset.user_ids, size=min(100, dataset.n_users), replace=False)]
    print(f"slowloris: trained {dataset.n:,} reviews in {time.monotonic() - started:.1f} s", flush=True)
    topo = Topology(
        artifacts=root,
        port=free_port(),
        similarity_port=free_port(),
        rating_port=free_port(),
        log_dir=work / "logs",
    )
    stack.enter_context(topo)
    topo.start_all()
    topo.wait_ready("gateway", timeout=90)
    return topo, by_reviews[:200], users


def report(name: str, result: dict) -> None:
    client = result["client"]
    print(
        f"{name}: {client['requests']:,} requests; GET {client['get_statuses']}, POST {client['post_statuses']}, "
        f"broken connections {client['broken']}; GET p50 {client['get_p50_ms']:.1f} ms, "
        f"p99 {client['get_p99_ms']:.1f} ms, max {client['get_max_ms']:.1f} ms",
        flush=True,
    )
    if "slow_senders" in result:
        print(f"  {result['senders']} slow senders: {result['slow_senders']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="reviews to train on (default: generated demo data)")
    parser.add_argument("--reviews", type=int, default=20_000, help="generated reviews (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--senders", type=int, default=64, help="slow body senders (default %(default)s)")
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=45.0, help="length of the attack (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=400.0, help="hard bound on the whole run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    stop_after(args.max_seconds)
    print(f"slowloris: {machine()}", flush=True)
    with contextlib.ExitStack() as stack:
        topo, items, users = start_system(args, stack)
        host, port = topo.host, topo.port
        mix = client_mix(items, users)
        baseline = {"client": asyncio.run(normal_client(host, port, mix, args.baseline_seconds))}
        report("baseline", baseline)
        attacked = asyncio.run(attack(host, port, args.senders, mix, args.seconds))
        report("attack", attacked)
    client = attacked["client"]
    ok = set(client["get_statuses"]) == {200} and client["broken"] == 0 and client["get_p99_ms"] < 1000
    print(f"slowloris: target {'met' if ok else 'MISSED'} (every GET 200, p99 under 1 s, during the attack)")
    write_json(args.json, {"machine": machine(), "baseline": baseline, "attack": attacked, "target_met": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

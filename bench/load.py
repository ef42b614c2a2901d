"""Load test of the whole system: a soak on a mix of routes, then bursts of 1,000 connections at once.

It trains generated demo data (or ``--data``) into a temporary directory and starts the three real processes
with ``chorus up``'s launcher and Chorus's HTTP protocol (the limits of README "Operations"), then:

1. **soak**: ``--clients`` keep-alive clients (64) send a fixed, seeded mix of routes for ``--soak-seconds``
   (60) after a short warm-up: similar items, item facts, title search, similar users, recommendations (default
   ranker and ``similar``), predictions (``GET`` and a ``POST`` batch), basket recommendations, health and
   readiness; one ``GET`` in ten with ``Cache-Control: no-cache``. It prints requests, errors (5xx or a broken
   connection), p50/p99 and each process's resident memory before and after. Targets: 0 errors, RSS growth
   under 10% per process.
2. **burst**: ``--burst`` connections (1,000) are opened first, then each sends one request at the same moment;
   once with cached ``GET`` requests and once with ``Cache-Control: no-cache`` over many items (every admitted one
   reaches the similarity service). It prints how each was answered and the longest wait. Targets: no request
   waits more than 2 s for its answer; a shed request gets 503 with ``Retry-After``.
3. **bodies**: for ``--body-seconds`` (15), four clients post batches of 10,000 pairs (under 1 MiB, so allowed,
   and validated off the event loop) and six declare 46 MB bodies (refused with 413 before they are read), while
   ``/healthz`` is polled: it prints how ``/healthz`` fared and the gateway's memory.

Usage::

    python bench/load.py                          # 20,000 generated reviews, in-process LRU cache
    python bench/load.py --redis-url redis://127.0.0.1:6379/13    # cache in Redis (that database is flushed)
    python bench/load.py --soak-seconds 10 --burst 300 --json load.json

The load generator is bench/serve.py's asyncio HTTP/1.1 client (framed by ``Content-Length``), in this process,
on the same machine as the three servers: on a small machine it takes CPU from them, so the figures are a lower
bound. The run, training included, is bounded by ``--max-seconds``; every process is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import machine, train_demo, write_json  # noqa: E402
from bench.serve import Connection, flush_redis, free_port  # noqa: E402


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: chorus"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def route_mix(users: list[str], items: list[str], seed: int, size: int = 4000) -> list[tuple[str, bytes]]:
    """``size`` requests over the public routes, drawn with fixed weights from ``users`` and ``items``, each
    with a label naming its route."""
    import numpy as np

    rng = np.random.default_rng(seed)
    fresh = {"Cache-Control": "no-cache"}

    def user() -> str:
        return users[int(rng.integers(len(users)))]

    def measure() -> str:
        return str(rng.choice(["jaccard", "cosine"]))

    def item() -> str:
        # skewed towards the first (most reviewed) items, as real traffic is
        return items[min(int(rng.zipf(1.3)) - 1, len(items) - 1)]

    def batch() -> bytes:
        pairs = [{"user_id": user(), "item_id": item()} for _ in range(20)]
        return json.dumps({"pairs": pairs}).encode()

    routes = [
        (30, "similar items", lambda: ("GET", f"/v1/items/{item()}/similar?k=10&measure={measure()}")),
        (10, "item", lambda: ("GET", f"/v1/items/{item()}")),
        (5, "search", lambda: ("GET", f"/v1/items?q={item()}&limit=5")),
        (10, "similar users", lambda: ("GET", f"/v1/users/{user()}/similar?k=5")),
        (15, "recommendations", lambda: ("GET", f"/v1/users/{user()}/recommendations?k=10")),
        (5, "because you liked", lambda: ("GET", f"/v1/users/{user()}/recommendations?k=10&method=similar")),
        (10, "predict", lambda: ("GET", f"/v1/predict?user_id={user()}&item_id={item()}")),
        (5, "predict batch of 20", lambda: ("POST", "/v1/predict", batch())),
        (5, "basket", lambda: ("POST", "/v1/recommendations", json.dumps({"items": [item(), item()]}).encode())),
        (3, "healthz", lambda: ("GET", "/healthz")),
        (1, "readyz", lambda: ("GET", "/readyz")),
    ]
    weights = np.array([w for w, _, _ in routes], dtype=float)
    picks = rng.choice(len(routes), size=size, p=weights / weights.sum())
    out = []
    for pick in picks:
        _, label, build = routes[pick]
        method, path, *body = build()
        headers = fresh if method == "GET" and path.startswith("/v1/") and rng.random() < 0.1 else None
        out.append((label, request_bytes(method, path, headers, body[0] if body else b"")))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def soak(
    host: str, port: int, requests: list[tuple[str, bytes]], clients: int, seconds: float, warmup: float
) -> dict:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    by_route: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    counter = 0
    measure_from = loop.time() + warmup
    stop = measure_from + seconds

    async def client() -> None:
        nonlocal counter
        conn: Connection | None = None
        while loop.time() < stop:
            label, raw = requests[counter % len(requests)]
            counter += 1
            t0 = time.perf_counter()
            try:
                if conn is None or conn.transport is None or conn.transport.is_closing():
                    conn = (await loop.create_connection(Connection, host, port))[1]
                head = await asyncio.wait_for(conn.send(raw), 30)
                status = head[9:12].decode()
            except (OSError, TimeoutError) as exc:
                status = type(exc).__name__
                conn = None
            if loop.time() >= measure_from:
                latencies.append(time.perf_counter() - t0)
                by_route.setdefault(label, []).append(latencies[-1])
                statuses[status] = statuses.get(status, 0) + 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    errors = sum(n for s, n in statuses.items() if not s.isdigit() or s >= "500")
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "errors": errors,
        "statuses": dict(sorted(statuses.items())),
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "routes": {
            label: {
                "requests": len(values),
                "p50_ms": 1000 * statistics.median(values),
                "p99_ms": 1000 * percentile(sorted(values), 0.99),
            }
            for label, values in sorted(by_route.items())
        },
    }


async def burst(host: str, port: int, requests: list[bytes], connections: int) -> dict:
    """Open ``connections`` connections, then send one request on each at the same moment."""
    loop = asyncio.get_running_loop()
    opened = await asyncio.gather(
        *(loop.create_connection(Connection, host, port) for _ in range(connections)), return_exceptions=True
    )
    conns = [c[1] for c in opened if not isinstance(c, BaseException)]
    outcomes: dict[str, int] = {}
    if len(conns) < connections:
        outcomes["connect_failed"] = connections - len(conns)
    waits: list[float] = []

    async def one(conn: Connection, raw: bytes) -> None:
        t0 = time.perf_counter()
        try:
            head = await asyncio.wait_for(conn.send(raw), 30)
            status = head[9:12].decode()
            if status == "503":
                status += " retry-after" if b"\r\nretry-after:" in head else " without retry-after"
                status += " overloaded" if b"overloaded" in head or b"retry-after" in head else ""
        except (OSError, TimeoutError) as exc:
            status = type(exc).__name__
        waits.append(time.perf_counter() - t0)
        outcomes[status] = outcomes.get(status, 0) + 1

    await asyncio.gather(*(one(c, requests[i % len(requests)]) for i, c in enumerate(conns)))
    for conn in conns:
        conn.transport.close()
    waits.sort()
    return {
        "connections": connections,
        "outcomes": dict(sorted(outcomes.items())),
        "max_wait_s": waits[-1] if waits else float("nan"),
        "p99_wait_s": percentile(waits, 0.99),
        "p50_wait_s": statistics.median(waits) if waits else float("nan"),
    }


HEALTHZ_PROBE = """
import http.client, json, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conn, stop, out = http.client.HTTPConnection(host, port, timeout=30), time.monotonic() + seconds, []
while time.monotonic() < stop:
    t0 = time.perf_counter()
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    out.append(time.perf_counter() - t0)
    time.sleep(0.05)
print(json.dumps(out))
"""


async def bodies(host: str, port: int, body: bytes, clients: int, seconds: float, pid: int) -> dict:
    """``clients`` clients posting ``body`` to ``/v1/predict`` over and over, six clients declaring 46 MB
    bodies, and a probe (a process of its own) polling ``/healthz`` every 50 ms: what the big bodies cost
    everyone else."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    raw = request_bytes("POST", "/v1/predict", None, body)
    statuses: dict[str, int] = {}
    health: list[float] = []

    async def poster() -> None:
        conn = (await loop.create_connection(Connection, host, port))[1]
        while loop.time() < stop:
            head = await asyncio.wait_for(conn.send(raw), 60)
            statuses[head[9:12].decode()] = statuses.get(head[9:12].decode(), 0) + 1
        conn.transport.close()

    async def oversized() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: chorus\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % (46 * 1024 * 1024) + b"[" * 65536)
        status = (await asyncio.wait_for(reader.readline(), 30))[9:12].decode()
        statuses[f"{status} (46 MB declared)"] = statuses.get(f"{status} (46 MB declared)", 0) + 1
        writer.close()

    async def healthz() -> None:
        # in a process of its own: this one's event loop, busy with the posters, must not delay the probe
        probe = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HEALTHZ_PROBE, host, str(port), str(seconds), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await probe.communicate()
        health.extend(json.loads(out))

    before = rss_mb(pid)
    await asyncio.gather(healthz(), *(poster() for _ in range(clients)), *(oversized() for _ in range(6)))
    health.sort()
    return {
        "body_bytes": len(body),
        "clients": clients,
        "statuses": statuses,
        "healthz_p50_ms": 1000 * statistics.median(health),
        "healthz_p99_ms": 1000 * percentile(health, 0.99),
        "healthz_max_ms": 1000 * health[-1],
        "gateway_rss_mb": {"before": before, "after": rss_mb(pid)},
    }


def start_system(args, stack: contextlib.ExitStack):
    import numpy as np

    from chorus.launcher import Topology
    from chorus.shared.http.shell import HTTP_PROTOCOL

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chorus-load-")))
    started = time.monotonic()
    root, dataset, by_reviews = train_demo(work, args.data, args.reviews, args.seed)
    items = by_reviews[:300]
    rng = np.random.default_rng(args.seed)
    users = [str(x) for x in rng.choice(dataset.user_ids, size=min(500, dataset.n_users), replace=False)]
    print(f"load: trained {dataset.n:,} reviews in {time.monotonic() - started:.1f} s", flush=True)
    if args.redis_url:
        flush_redis(args.redis_url)
        stack.callback(flush_redis, args.redis_url)
    topo = Topology(
        artifacts=root,
        port=free_port(),
        similarity_port=free_port(),
        rating_port=free_port(),
        redis_url=args.redis_url,
        # uvicorn reads UVICORN_HTTP as --http: Chorus's protocol whether or not the launcher passes it
        extra_env={"UVICORN_HTTP": HTTP_PROTOCOL},
        log_dir=work / "logs",
    )
    stack.enter_context(topo)
    topo.start_all()
    topo.wait_ready("gateway", timeout=90)
    return topo, users, items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="reviews to train on (default: generated demo data)")
    parser.add_argument("--reviews", type=int, default=20_000, help="generated reviews (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redis-url", help="cache in this Redis database (flushed before and after); default LRU")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=1000, help="connections of each burst (default %(default)s)")
    parser.add_argument("--body-seconds", type=float, default=15.0, help="length of the big-bodies phase")
    parser.add_argument("--max-seconds", type=float, default=400.0, help="hard bound on the whole run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    def out_of_time(signum, frame):
        raise KeyboardInterrupt(f"load: stopped after --max-seconds {args.max_seconds:.0f}")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.max_seconds))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.burst + args.clients + 256  # inherited by the servers too
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    print(f"load: {machine()}", flush=True)
    with contextlib.ExitStack() as stack:
        topo, users, items = start_system(args, stack)
        host, port = "127.0.0.1", topo.port
        pids = {name: proc.pid for name, proc in topo.procs.items()}
        requests = route_mix(users, items, args.seed)

        async def run() -> dict:
            # the warm-up runs inside the soak (not measured); RSS "before" is read right after it
            before: dict[str, float] = {}

            async def mark_before() -> None:
                await asyncio.sleep(args.warmup_seconds)
                before.update({name: rss_mb(pid) for name, pid in pids.items()})

            soaked, _ = await asyncio.gather(
                soak(host, port, requests, args.clients, args.soak_seconds, args.warmup_seconds), mark_before()
            )
            after = {name: rss_mb(pid) for name, pid in pids.items()}
            soaked["rss_mb"] = {n: {"before": before[n], "after": after[n]} for n in pids}
            cached = [r for _, r in requests if r.startswith(b"GET /v1/items/") and b"no-cache" not in r]
            fresh = [
                request_bytes("GET", f"/v1/items/{item}/similar?k=10&measure=jaccard", {"Cache-Control": "no-cache"})
                for item in items
            ]
            pairs = [{"user_id": users[i % len(users)], "item_id": items[i % len(items)]} for i in range(10_000)]
            big = json.dumps({"pairs": pairs}).encode()
            return {
                "soak": soaked,
                "burst_cached": await burst(host, port, cached, args.burst),
                "burst_no_cache": await burst(host, port, fresh, args.burst),
                "bodies": await bodies(host, port, big, 4, args.body_seconds, pids["gateway"]),
            }

        results = asyncio.run(run())
    signal.alarm(0)
    s = results["soak"]
    print(
        f"soak: {s['clients']} clients, {s['seconds']:.0f} s: {s['requests']:,} requests ({s['rps']:.0f}/s), "
        f"{s['errors']} errors, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; statuses {s['statuses']}"
    )
    for label, r in s["routes"].items():
        print(f"  {label:20s} {r['requests']:6,} requests, p50 {r['p50_ms']:7.1f} ms, p99 {r['p99_ms']:7.1f} ms")
    for name, mem in s["rss_mb"].items():
        growth = 100 * (mem["after"] / mem["before"] - 1)
        print(f"  RSS {name:10s} {mem['before']:7.1f} MB -> {mem['after']:7.1f} MB ({growth:+.1f}%)")
    for key in ("burst_cached", "burst_no_cache"):
        b = results[key]
        print(
            f"{key.replace('_', ' ')}: {b['connections']} connections: longest wait {b['max_wait_s']:.2f} s, "
            f"p99 {b['p99_wait_s']:.2f} s, p50 {b['p50_wait_s']:.2f} s; {b['outcomes']}"
        )
    b = results["bodies"]
    rss = b["gateway_rss_mb"]
    print(
        f"bodies: {b['clients']} clients posting {b['body_bytes'] / 1e6:.2f} MB batches of 10,000 pairs and six "
        f"declaring 46 MB for {args.body_seconds:.0f} s: {b['statuses']}; /healthz meanwhile p50 "
        f"{b['healthz_p50_ms']:.1f} ms, p99 {b['healthz_p99_ms']:.1f} ms, max {b['healthz_max_ms']:.1f} ms; "
        f"gateway RSS {rss['before']:.1f} -> {rss['after']:.1f} MB"
    )
    write_json(args.json, {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

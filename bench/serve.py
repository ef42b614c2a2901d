"""Serving benchmark of the gateway: throughput and latency of cache hits and misses against a bare ceiling.

For 1, 8 and 32 concurrent keep-alive clients it measures requests per second and p50/p99 latency of

(a) ``hit``: the same cached ``GET /v1/items/{item}/similar?k=10`` over and over;
(b) ``miss``: the same route with ``Cache-Control: no-cache`` for a different item each time (round-robin over
    500 items), so every request goes to the similarity service and its answer is stored again;
(c) ``ceiling``: a bare FastAPI endpoint returning a constant JSON body (the hit's own bytes), in the same kind
    of process (uvicorn, one worker, same HTTP implementation, no access log) -- the best a route can do there;
(d) with the real system, also ``similarity direct``: the miss scenario's requests sent straight to the
    similarity service, i.e. what a miss waits for.

Usage::

    python bench/serve.py                      # the real system (default): generates the demo data, trains it
                                               # into a temporary directory, starts the similarity and rating
                                               # services and the gateway with chorus up's launcher, caching
                                               # in Redis database 13 (flushed before and after)
    python bench/serve.py --reviews 20000 --duration 2          # smaller data, shorter rows
    python bench/serve.py --mode fake          # a fake similarity/rating service instead of the real ones;
                                               # gateways with each cache backend (in-process LRU; Redis
                                               # without and with the near cache)
    python bench/serve.py --gateway-url http://127.0.0.1:8000 --item B0002E1G5C   # a running system
    python bench/serve.py --duration 5 --json bench-serve.json

The rows are measured by concurrency level, each scenario in turn (ceiling, then the gateway's rows), so that a
change in the machine's load during the run hits all scenarios alike. In the fake mode the downstream is a raw
ASGI app answering any item with a fixed body, so the miss row measures the gateway's own miss path plus one
loopback call, not a real similarity query. The ceiling is always started by the bench. Every process the bench
starts runs in its own session and is terminated (then killed) on exit; the whole run, training included, is
bounded by ``--max-seconds``.

The load generator is a small asyncio HTTP/1.1 client (one ``asyncio.Protocol`` per keep-alive connection,
requests prebuilt as bytes, responses framed by ``Content-Length``): httpx costs far more CPU per request than the
server under test at 32 clients, and ``wrk`` is not part of the toolchain. It shares the machine with the server,
so the figures are a lower bound of what the server can do; compare rows, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chorus.shared.contract.names import redact_url

ROOT = Path(__file__).resolve().parent.parent
VERSION = f"bench-{os.getpid()}"
BENCH_ITEM = "B0000001"


def _similar_body(item_id: str, k: int = 10) -> bytes:
    data = [
        {"item_id": f"B{n:07d}", "title": f"Benchmark product number {n}", "score": 0.5 / n} for n in range(1, k + 1)
    ]
    return json.dumps({"item_id": item_id, "measure": "jaccard", "data": data, "count": k}).encode()


CONSTANT = _similar_body(BENCH_ITEM)

# self-contained mode: gateway settings per cache backend (REDIS_URL is set by the bench)
BACKENDS = {
    "memory": {},  # no REDIS_URL: the in-process LRU
    "redis": {},  # the default with Redis: every hit is a (batched) Redis lookup
    "redis+near": {"CHORUS_NEAR_CACHE_TTL": "2"},  # opt-in near cache of hot answers in front of Redis
}


# --- the apps the bench serves (imported by uvicorn as ``serve:...`` with ``--app-dir bench``) ------------


def ceiling_app():
    """The ceiling: a bare FastAPI route returning constant JSON bytes (those of ``$BENCH_BODY`` if set)."""
    from fastapi import FastAPI, Response

    body = Path(os.environ["BENCH_BODY"]).read_bytes() if os.environ.get("BENCH_BODY") else CONSTANT
    app = FastAPI()

    @app.get("/v1/constant")
    async def constant() -> Response:
        return Response(body, media_type="application/json")

    return app


def fake_downstream_app():
    """A fast stand-in for both services: ``/readyz`` and any ``/v1/...`` GET answer at once."""
    version = os.environ.get("BENCH_VERSION", "bench")
    ready = json.dumps({"status": "ready", "version": version, "detail": None}).encode()
    by_k = {k: _similar_body(BENCH_ITEM, min(k, 50)) for k in range(1, 501)}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path in ("/readyz", "/healthz"):
            body = ready
        else:
            query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
            body = by_k.get(int(query.get("k", 10)) if query.get("k", "").isdigit() else 10, CONSTANT)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-model-version", version.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Processes started by the bench, each in its own session; all stopped on exit."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def uvicorn(self, app: str, port: int, env: dict[str, str] | None = None, app_dir: str | None = None) -> str:
        cmd = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--no-access-log", "--log-level", "warning"]
        if app_dir:
            cmd += ["--app-dir", app_dir]
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        return url

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def wait_ready(url: str, proc: subprocess.Popen | None = None, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"bench: process for {url} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        with contextlib.suppress(OSError):  # the ceiling has no /healthz
            with urllib.request.urlopen(url + "/v1/constant", timeout=1):
                return
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up within {seconds:.0f} s")


# --- the load generator -------------------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self):
        self.buffer = bytearray()
        self.need: int | None = None
        self.head = b""
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = bytes(self.buffer[:end]).lower()
            at = self.head.find(b"content-length:")
            if at < 0:
                self._fail(ConnectionError("response without Content-Length"))
                return
            stop = self.head.find(b"\r\n", at)
            self.need = end + 4 + int(self.head[at + 15 : stop if stop > 0 else None])
        if len(self.buffer) >= self.need:
            del self.buffer[: self.need]
            self.need = None
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(self.head)

    def connection_lost(self, exc):
        self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def send(self, raw: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


def request_bytes(host: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def load(url: str, requests: list[bytes], clients: int, duration: float, warmup: float) -> dict:
    """``clients`` connections sending ``requests`` round-robin for ``warmup + duration`` seconds."""
    host, port = url.split("://", 1)[1].split(":")
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(Connection, host, int(port)))[1] for _ in range(clients)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    hits = 0
    counter = 0
    start = loop.time()
    measure_from = start + warmup
    stop = measure_from + duration

    async def client(conn: Connection) -> None:
        nonlocal counter, hits
        clock = time.perf_counter
        n = len(requests)
        while True:
            raw = requests[counter % n]
            counter += 1
            t0 = clock()
            head = await conn.send(raw)
            t1 = clock()
            now = loop.time()
            if now >= stop:
                return
            if now >= measure_from:
                latencies.append(t1 - t0)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
                if b"x-cache: hit" in head:
                    hits += 1

    await asyncio.gather(*(client(c) for c in conns))
    for conn in conns:
        conn.transport.close()
    latencies.sort()
    count = len(latencies)
    return {
        "clients": clients,
        "requests": count,
        "rps": count / duration,
        "p50_ms": 1000 * statistics.median(latencies) if count else float("nan"),
        "p99_ms": 1000 * latencies[min(count - 1, int(0.99 * count))] if count else float("nan"),
        "statuses": statuses,
        "hit_fraction": hits / count if count else 0.0,
    }


# --- scenarios ----------------------------------------------------------------------------------------------

MISS_KEYS = 500  # distinct keys the miss scenario cycles through: far more than requests in flight


@dataclass
class Target:
    """A gateway to measure: the item of the hit scenario and the items the miss scenario cycles through."""

    label: str
    url: str
    item: str
    miss_items: list[str]
    similarity_url: str | None = None  # the real similarity service, measured directly with the miss requests


def scenarios(target: Target) -> dict[str, list[bytes]]:
    host = target.url.split("://", 1)[1]
    hit = [request_bytes(host, f"/v1/items/{target.item}/similar?k=10")]
    fresh = {"Cache-Control": "no-cache"}
    if len(target.miss_items) > 1:
        # a different item each time: with at most 32 requests in flight no two concurrent requests share a key,
        # so the gateway's single flight never merges them
        paths = [f"/v1/items/{item}/similar?k=10" for item in target.miss_items]
    else:  # one known item: vary k within the neighbour table instead
        paths = [f"/v1/items/{target.item}/similar?k={k}" for k in range(1, 51)]
    return {"hit": hit, "miss": [request_bytes(host, path, fresh) for path in paths]}


def direct_requests(target: Target) -> list[bytes]:
    """The miss scenario's requests sent straight to the similarity service (what a miss waits for)."""
    host = target.similarity_url.split("://", 1)[1]
    return [request_bytes(host, f"/v1/items/{item}/similar?k=10") for item in target.miss_items]


def warm(target: Target) -> bytes:
    """Ask for the hit scenario's answer until it is a cache hit; return its body."""
    request = urllib.request.Request(f"{target.url}/v1/items/{target.item}/similar?k=10")
    for _ in range(2):
        with urllib.request.urlopen(request, timeout=10) as response:
            state = response.headers.get("X-Cache")
            body = response.read()
    if state != "hit":
        raise SystemExit(f"bench: {target.url} does not answer the hit scenario from its cache (X-Cache: {state})")
    return body


def measure(label: str, url: str, requests: list[bytes], clients: int, args) -> dict:
    row = asyncio.run(load(url, requests, clients, args.duration, args.warmup))
    row["scenario"] = label
    print(
        f"  {label:<18} {clients:>3} clients  {row['rps']:>8.0f} req/s  p50 {row['p50_ms']:6.2f} ms"
        f"  p99 {row['p99_ms']:6.2f} ms  hits {row['hit_fraction']:4.0%}  statuses {row['statuses']}",
        flush=True,
    )
    return row


def stop_after(seconds: float) -> None:
    """Raise KeyboardInterrupt in the main thread after ``seconds`` (or on SIGTERM), so that the bench's
    ``finally`` blocks stop every process it started; ``signal.alarm(0)`` cancels it."""

    def out_of_time(signum, frame):
        raise KeyboardInterrupt(f"bench: stopped after --max-seconds {seconds:.0f}")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, out_of_time)
    signal.alarm(int(seconds))


def redis_reachable(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


def bench_database(url: str) -> str | None:
    """Why ``url`` must not be flushed by the bench, or ``None``: it must name a database other than 0."""
    from urllib.parse import urlparse

    path = urlparse(url).path.strip("/")
    if not path.isdigit() or int(path) == 0:
        return f"--redis-url {url} must name a dedicated database other than 0 (it is flushed), e.g. .../13"
    return None


# --- the real system ----------------------------------------------------------------------------------------


def start_system(args, stack: contextlib.ExitStack) -> Target:
    """Demo data (or ``--data``) trained into a temporary directory, served by chorus up's three processes."""
    sys.path.insert(0, str(ROOT))
    from bench._common import train_demo
    from chorus.launcher import Topology

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chorus-bench-")))
    started = time.monotonic()
    root, dataset, by_reviews = train_demo(work, args.data, args.reviews, args.seed)
    # the most reviewed items: the hottest for the hit scenario, the next ones for the misses
    items = by_reviews[: MISS_KEYS + 1]
    print(
        f"bench: trained {dataset.n:,} reviews ({dataset.n_users:,} users, {dataset.n_items:,} items) "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )

    flush_redis(args.redis_url)
    stack.callback(flush_redis, args.redis_url)
    extra = {"CHORUS_CACHE_TTL": "600"}
    if args.cache == "redis+near":
        extra.update(BACKENDS["redis+near"])
    topo = Topology(
        artifacts=root,
        port=free_port(),
        similarity_port=free_port(),
        rating_port=free_port(),
        redis_url=None if args.cache == "memory" else args.redis_url,
        extra_env=extra,
        log_dir=work / "logs",
    )
    stack.enter_context(topo)  # stops every service on exit
    topo.start_all()
    topo.wait_ready("gateway", timeout=60)
    label = "" if args.cache == "redis" else f" ({args.cache})"
    return Target(label, topo.url(), items[0], items[1:], similarity_url=topo.url("similarity"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode",
        choices=["system", "fake"],
        default="system",
        help="system (default): the real similarity and rating services on trained demo data; fake: a fake "
        "downstream answering at once",
    )
    parser.add_argument("--gateway-url", help="benchmark this running gateway instead of starting one")
    parser.add_argument("--item", help="an item id the similarity service knows (required with --gateway-url)")
    parser.add_argument("--reviews", type=int, default=200_000, help="system mode: demo reviews (default 200,000)")
    parser.add_argument("--data", type=Path, help="system mode: train on this review dump instead of demo data")
    parser.add_argument("--seed", type=int, default=0, help="system mode: seed of the demo data and the training")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per row (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each row")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument(
        "--cache",
        choices=[*BACKENDS, "all"],
        help="cache backend(s) of the gateway: in-process LRU, Redis, Redis behind a near cache "
        "(default: redis in system mode, all in fake mode)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="Redis of the gateways the bench starts; its database is flushed before and after (default %(default)s)",
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="hard bound on the whole run")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.gateway_url and not args.item:
        parser.error("--gateway-url needs --item, an item id the similarity service knows")
    args.cache = args.cache or ("all" if args.mode == "fake" else "redis")
    if args.mode == "system" and not args.gateway_url and args.cache == "all":
        parser.error("system mode measures one cache backend at a time: --cache memory, redis or redis+near")
    if not args.gateway_url and args.cache != "memory":
        reason = bench_database(args.redis_url)
        if reason:
            parser.error(reason)

    def rows() -> list[dict]:
        found: list[dict] = []
        with contextlib.ExitStack() as stack:
            procs = Processes()
            stack.callback(procs.stop)
            targets: list[Target] = []
            if args.gateway_url:
                targets.append(Target("", args.gateway_url.rstrip("/"), args.item, [args.item]))
            elif args.mode == "system":
                if args.cache != "memory" and not redis_reachable(args.redis_url):
                    raise SystemExit(
                        f"bench: no Redis at {redact_url(args.redis_url)}; start one or pass --cache memory"
                    )
                targets.append(start_system(args, stack))
            else:
                targets += start_fake(args, procs, stack)

            body = [warm(target) for target in targets][0]
            # the ceiling answers the very bytes of the (first) hit answer
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chorus-bench-"))) / "body.json"
            path.write_bytes(body)
            ceiling = procs.uvicorn(
                "serve:ceiling_app", free_port(), {"BENCH_BODY": str(path)}, app_dir=str(ROOT / "bench")
            )
            ceiling_requests = [request_bytes(ceiling.split("://", 1)[1], "/v1/constant")]

            print(
                f"bench: {args.duration:.1f} s per row after {args.warmup:.1f} s warm-up; {machine()}; "
                f"hit answer {len(body)} bytes",
                flush=True,
            )
            for clients in args.concurrency:
                found.append(measure("ceiling", ceiling, ceiling_requests, clients, args))
                for target in targets:
                    for name, requests in scenarios(target).items():
                        found.append(measure(f"{name}{target.label}", target.url, requests, clients, args))
                    if target.similarity_url:
                        found.append(
                            measure("similarity direct", target.similarity_url, direct_requests(target), clients, args)
                        )
        return found

    return run_bounded(args, rows, print_table)


def run_bounded(args, rows: Callable[[], list[dict]], table: Callable[[list[dict]], None]) -> int:
    """Measure ``rows()`` within ``--max-seconds`` (every process it starts stopped on the way out), print them
    with ``table`` and write them to ``--json``; the exit status."""
    stop_after(args.max_seconds)
    try:
        measured = rows()
    except KeyboardInterrupt as exc:
        print(exc or "bench: interrupted", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
    table(measured)
    if args.json:
        args.json.write_text(json.dumps({"rows": measured, "python": sys.version, "machine": machine()}, indent=2))
    return 0


def start_fake(args, procs: Processes, stack: contextlib.ExitStack) -> list[Target]:
    """A fake of both services and one gateway per cache backend."""
    fake = procs.uvicorn(
        "serve:fake_downstream_app", free_port(), {"BENCH_VERSION": VERSION}, app_dir=str(ROOT / "bench")
    )
    env = {"CHORUS_SIMILARITY_URL": fake, "CHORUS_RATING_URL": fake, "CHORUS_CACHE_TTL": "120"}
    backends = list(BACKENDS) if args.cache == "all" else [args.cache]
    if backends != ["memory"]:
        if not redis_reachable(args.redis_url):
            print(f"bench: no Redis at {redact_url(args.redis_url)}; skipping the Redis rows", file=sys.stderr)
            backends = [b for b in backends if b == "memory"]
        else:
            flush_redis(args.redis_url)
            stack.callback(flush_redis, args.redis_url)
    miss_items = [f"B{n:07d}" for n in range(2, MISS_KEYS + 2)]
    targets = []
    for backend in backends:
        gw_env = dict(env, **BACKENDS[backend], REDIS_URL="" if backend == "memory" else args.redis_url)
        url = procs.uvicorn("chorus.services.gateway.app:create_app", free_port(), gw_env)
        targets.append(Target(f" ({backend})", url, BENCH_ITEM, miss_items))
    return targets


def machine() -> str:
    sys.path.insert(0, str(ROOT))
    from bench._common import machine as describe

    return describe()


def print_table(rows: list[dict]) -> None:
    ceiling = {r["clients"]: r["rps"] for r in rows if r["scenario"] == "ceiling"}
    order = list(dict.fromkeys(r["scenario"] for r in rows))
    print()
    print("| scenario | clients | req/s | p50 ms | p99 ms | X-Cache hit | of ceiling |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(rows, key=lambda r: (order.index(r["scenario"]), r["clients"])):
        share = r["rps"] / ceiling[r["clients"]] if ceiling.get(r["clients"]) else float("nan")
        bad = {s: n for s, n in r["statuses"].items() if s != 200}
        note = f" (non-200: {bad})" if bad else ""
        hits = "" if r["scenario"] in ("ceiling", "similarity direct") else f"{r['hit_fraction']:.0%}"
        print(
            f"| {r['scenario']}{note} | {r['clients']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {hits} | {share:.0%} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())

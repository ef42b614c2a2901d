"""What an event store adds to a cache hit of the gateway: p50/p99 of cached GETs without a store, with SQLite
and with PostgreSQL, and what a POST of events costs on each.

With an event store, every cached answer that depends on events is keyed by the store's sequence number for it
(``chorus.services.gateway.events``), so each hit first reads ``user_seq`` (a user's recommendations) or
``last_seq`` (an item's similar items) from the store, off the event loop. This bench measures that read where
it matters: the hit path. For 1, 8 and 32 keep-alive clients it measures

(a) ``user hit``: ``GET /v1/users/{user}/recommendations?k=10``, cached, for one of 64 users in turn (each a
    hit; its key carries the user's ``seq``);
(b) ``item hit``: ``GET /v1/items/{item}/similar?k=10``, cached (its key carries the store's ``last_seq``);
(c) with a store, ``post``: ``POST /v1/events`` of one event, acknowledged once durable (a new event each time,
    so with many clients it also says how the store takes concurrent commits).

Each store is filled first with ``--events`` events (default 100,000) over 10,000 users, so the reads use the
store's indexes at a realistic size. The downstream is the fake of ``bench/serve.py`` (answers at once); the
cache is Redis (database 13 by default, flushed before and after). The hit rows run before the post rows at each
level of concurrency, so the hit rows see a store that does not change under them; the no-store gateway is
measured in turn with the others, so a change in the machine's load hits all rows alike.

Usage::

    python bench/events.py                         # no store, SQLite, PostgreSQL (CHORUS_TEST_DATABASE_URL)
    python bench/events.py --stores none,sqlite --duration 2 --json bench-events.json
    python bench/events.py --postgres-url postgresql://postgres@127.0.0.1:5432/test

PostgreSQL rows use a schema of their own in that database, created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serve import (  # noqa: E402 - the repository root is put on the path just above
    VERSION,
    Processes,
    bench_database,
    flush_redis,
    free_port,
    load,
    machine,
    redis_reachable,
    request_bytes,
    run_bounded,
)
from chorus.shared.contract.names import redact_url  # noqa: E402

KEY = "bench-" + secrets.token_hex(16)
USERS = 10_000
HOT_USERS = 64


def postgres_schema(url: str, stack: contextlib.ExitStack) -> str:
    """A schema of the bench's own in ``url``'s database (dropped on exit); the URL of a store in it."""
    import sqlalchemy as sa

    schema = f"chorus_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(sa.engine.make_url(url).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    stack.callback(drop)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def fill(url: str, events: int) -> None:
    """``events`` views over :data:`USERS` users, in batches of 1,000."""
    from chorus.shared.events.store import EventStore, new_event

    store = EventStore(url)
    try:
        for start in range(0, events, 1000):
            batch = [
                new_event(f"user{n % USERS}", f"I{n % 5000}", "view", timestamp=1.7e9 + n)
                for n in range(start, min(events, start + 1000))
            ]
            store.append(batch)
    finally:
        store.close()


def warm(url: str, paths: list[str]) -> None:
    """Ask for each path until it is a cache hit."""
    for path in paths:
        for _ in range(3):
            with urllib.request.urlopen(url + path, timeout=10) as response:
                state = response.headers.get("X-Cache")
                response.read()
            if state == "hit":
                break
        else:
            raise SystemExit(f"bench: {url}{path} is not answered from the cache (X-Cache: {state})")


def post_requests(host: str, count: int) -> list[bytes]:
    """``count`` distinct one-event POSTs (their ids are random: a rerun stores new events)."""
    run = secrets.token_hex(4)
    out = []
    for n in range(count):
        body = json.dumps(
            {"events": [{"event_id": f"{run}-{n}", "user_id": f"poster{n % 100}", "item_id": "I1", "kind": "view"}]}
        ).encode()
        head = [
            "POST /v1/events HTTP/1.1",
            f"Host: {host}",
            f"Authorization: Bearer {KEY}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        out.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="none,sqlite,postgresql", help="which gateways (default %(default)s)")
    parser.add_argument("--events", type=int, default=100_000, help="events in each store before measuring")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per row (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each row")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="flushed before and after")
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="PostgreSQL for the postgresql rows (default: $CHORUS_TEST_DATABASE_URL or "
        "postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard bound on the whole run")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",")]
    if unknown := set(stores) - {"none", "sqlite", "postgresql"}:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))} (none, sqlite, postgresql)")
    if reason := bench_database(args.redis_url):
        parser.error(reason)
    if not redis_reachable(args.redis_url):
        raise SystemExit(f"bench: no Redis at {redact_url(args.redis_url)}")
    postgres = args.postgres_url or os.environ.get(
        "CHORUS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )

    def rows() -> list[dict]:
        found: list[dict] = []
        with contextlib.ExitStack() as stack:
            procs = Processes()
            stack.callback(procs.stop)
            flush_redis(args.redis_url)
            stack.callback(flush_redis, args.redis_url)
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chorus-bench-events-")))
            fake = procs.uvicorn(
                "serve:fake_downstream_app", free_port(), {"BENCH_VERSION": VERSION}, app_dir=str(ROOT / "bench")
            )
            base = {
                "CHORUS_SIMILARITY_URL": fake,
                "CHORUS_RATING_URL": fake,
                "CHORUS_CACHE_TTL": "600",
                "REDIS_URL": args.redis_url,
                "CHORUS_API_KEYS": KEY,
                "CHORUS_MAX_IN_FLIGHT": "1024",
            }
            gateways: dict[str, str] = {}
            for name in stores:
                env = dict(base)
                if name != "none":
                    url = sqlite_url(work) if name == "sqlite" else postgres_schema(postgres, stack)
                    started = time.monotonic()
                    fill(url, args.events)
                    print(f"bench: {name}: {args.events:,} events stored in {time.monotonic() - started:.1f} s")
                    env["CHORUS_EVENTS_URL"] = url
                gateways[name] = procs.uvicorn("chorus.services.gateway.app:create_app", free_port(), env)
            users = [f"/v1/users/user{n}/recommendations?k=10" for n in range(HOT_USERS)]
            items = ["/v1/items/I1/similar?k=10"]
            for url in gateways.values():
                warm(url, users + items)
            print(f"bench: {args.duration:.1f} s per row after {args.warmup:.1f} s warm-up; {machine()}", flush=True)
            for clients in args.concurrency:
                for scenario, paths in (("user hit", users), ("item hit", items)):
                    for name, url in gateways.items():
                        host = url.split("://", 1)[1]
                        requests = [request_bytes(host, p) for p in paths]
                        found.append(measure(scenario, name, url, requests, clients, args))
                for name, url in gateways.items():
                    if name != "none":
                        requests = post_requests(url.split("://", 1)[1], 20_000)
                        found.append(measure("post", name, url, requests, clients, args))
        return found

    return run_bounded(args, rows, print_table)


def sqlite_url(work: Path) -> str:
    from chorus.shared.events.store import sqlite_url as url_of

    return url_of(work / "events.db")


def measure(scenario: str, store: str, url: str, requests: list[bytes], clients: int, args) -> dict:
    row = asyncio.run(load(url, requests, clients, args.duration, args.warmup))
    row |= {"scenario": scenario, "store": store}
    print(
        f"  {scenario:<9} {store:<10} {clients:>3} clients  {row['rps']:>8.0f} req/s  p50 {row['p50_ms']:6.2f} ms"
        f"  p99 {row['p99_ms']:6.2f} ms  hits {row['hit_fraction']:4.0%}  statuses {row['statuses']}",
        flush=True,
    )
    return row


def print_table(rows: list[dict]) -> None:
    """One line per row; for a hit with a store, what it adds to the same hit without one."""
    bare = {(r["scenario"], r["clients"]): r for r in rows if r["store"] == "none"}
    print()
    print("| scenario | store | clients | req/s | p50 ms | p99 ms | p50 added | p99 added |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(rows, key=lambda r: (r["scenario"], r["clients"], r["store"])):
        base = bare.get((r["scenario"], r["clients"]))
        added = (
            ("", "")
            if base is None or r is base
            else tuple(f"{r[f'p{q}_ms'] - base[f'p{q}_ms']:+.2f}" for q in (50, 99))
        )
        bad = {s: n for s, n in r["statuses"].items() if s != 200}
        note = f" (non-200: {bad})" if bad else ""
        print(
            f"| {r['scenario']}{note} | {r['store']} | {r['clients']} | {r['rps']:.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {added[0]} | {added[1]} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())

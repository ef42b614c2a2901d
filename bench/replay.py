"""Replay benchmark: live feedback through the real HTTP API, against the same model frozen, and implicit's ALS
folding users in with ``recalculate_user`` beside it.

Protocol (time-ordered replay), per dataset (MovieLens 100K ``u.data``, the Amazon Musical Instruments 5-core file):

1. The file's rows are ordered by timestamp (ties in file order); the first 80% (``--train-fraction``) are written,
   as their original lines, to a temporary file in the dump's own format, and ``chorus train`` trains every
   component on it. The other rows are the *stream*, replayed in order (the first ``--limit-events`` of them; 0:
   all).
2. The three real processes start with ``chorus up``'s launcher (:class:`chorus.launcher.Topology`) on free ports,
   with an event store (``--stores``: a SQLite file, and/or a schema of its own in the PostgreSQL database of
   ``--postgres-url``, dropped afterwards) and a fresh API key.
3. **Frozen**: for every streamed event (user u, item i), is i in u's top 10 as the trained version serves it
   (``GET /v1/users/{u}/recommendations?k=10``, asked once per user: nothing changes while nothing is posted)?
4. **Live**: for every streamed event in order, ``GET`` u's top 10 (is i in it?), ``POST /v1/events`` the event
   (``Authorization: Bearer <key>``, ``{"events": [{"event_id", "user_id", "item_id", "kind": "rating", "rating",
   "timestamp"}]}``, answered ``{"stored", "duplicates"}``), then ``GET`` u's top 10 again at once: its latency is
   *GET-after-POST*, and the posted item must be gone from it (a user's recommendations leave out what they acted
   on); an answer that still lists it is *stale*, and if every such answer is stale the services do not fold
   events in and the script stops with an error.
5. **Ingest**: ``--single`` events posted one per request by ``--clients`` keep-alive connections, then
   ``--batches`` batches of 1,000 events by ``--batch-clients``, all for new users (so the replay's figures are
   unaffected): events per second of each, each post's p50 and p99, the CPU milliseconds per 1,000 events of the
   gateway process (read from ``/proc``) and of this script's client, and the load average when each part began.
   The client is light on purpose: raw asyncio connections (``bench.serve.Connection``) sending requests encoded
   beforehand, so that on a small machine it takes little of the CPU the servers need; its CPU column shows
   whether it could have been the limit. The gateway's store writer commits the events that arrive together in
   one transaction (group commit), so more connections posting at once make larger groups: ``--clients`` says
   how many clients a figure is for.

HR@10 is the share of streamed events whose item is in the top 10; NDCG@10 averages ``1 / log2(rank + 2)`` over
them (rank 0-based; 0 for a miss): with one relevant item per query, IDCG is 1.

**implicit ALS** (``implicit.cpu.als.AlternatingLeastSquares``, ``--als-factors`` factors, implicit's other
defaults: λ = 0.01, α = 1, 15 iterations, seed ``--seed``) is fitted on the same training rows (binary user x item
matrix) and replayed offline: frozen, each user's top 10 from their fitted factors (a user unknown to the training
rows gets the most popular training items); live, each user's factors recomputed from their training and streamed
items so far (``recommend(..., recalculate_user=True)``, the peer library's fold-in), items already seen left out.

Targets (README, "Evaluation and benchmarks"): live HR@10 at least 0.150 on MovieLens 100K and 0.123 on the Amazon
5-core file (frozen about 0.05 and 0.09) over the whole stream (``--limit-events 0``); at least 1,000 single-event
POSTs per second and 20,000 events per second in batches of 1,000 with PostgreSQL; POST p99 at most 20 ms.

    .venv/bin/python bench/replay.py [--datasets ml100k amazon5] [--stores sqlite postgresql]
        [--limit-events 2000] [--frozen-only] [--single 2000] [--batches 20] [--clients 8] [--batch-clients 4]
        [--json out.json]

The default (2,000 events per dataset, both stores) takes a few minutes on 2 cores, most of it training; the whole
streams (``--limit-events 0``) take longer (MovieLens has 20,000). ``--frozen-only`` skips the live replay and
the ingest (what runs without the events API). The client runs in this process, on the same machine as the
servers, so on a small machine it takes CPU from them. Every process started is stopped, the PostgreSQL schema
dropped and the temporary directory removed, on errors and Ctrl-C too. The data directory defaults to
``$CHORUS_DATA_DIR``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import machine, write_json  # noqa: E402
from bench.serve import Connection  # noqa: E402

DATASETS = {
    "ml100k": ("movielens-100k/u.data", "movielens-100k"),
    "amazon5": ("amazon-musical-instruments-5core-2014/reviews_Musical_Instruments_5.json.gz", "amazon-json"),
}
K = 10
BATCH = 1000


class LiveUnavailable(RuntimeError):
    """The running system cannot do the live part: no events API, a refused key, or no fold-in."""


@dataclass(frozen=True)
class Row:
    """One line of the dump: its text, and what the replay needs of it."""

    line: str
    user: str
    item: str
    rating: float
    timestamp: float


def read_rows(path: Path, format: str) -> list[Row]:
    """Every line of ``path`` (plain or gzip) with its user, item, rating and timestamp."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if format == "movielens-100k":
                user, item, rating, ts = line.rstrip("\n").split("\t")
                rows.append(Row(line, user, item, float(rating), float(ts)))
            else:
                r = json.loads(line)
                rows.append(Row(line, r["reviewerID"], r["asin"], float(r["overall"]), float(r["unixReviewTime"])))
    return rows


def time_split(rows: list[Row], fraction: float) -> tuple[list[Row], list[Row]]:
    """The first ``fraction`` of the rows by timestamp (ties in file order), and the rest."""
    ordered = sorted(range(len(rows)), key=lambda k: (rows[k].timestamp, k))
    cut = int(round(fraction * len(rows)))
    return [rows[k] for k in ordered[:cut]], [rows[k] for k in ordered[cut:]]


def write_dump(rows: list[Row], source: Path, format: str, folder: Path) -> Path:
    """The training rows as a file in the dump's format (MovieLens keeps its ``u.item`` titles beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / ("u.data" if format == "movielens-100k" else "train.json")
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(r.line if r.line.endswith("\n") else r.line + "\n" for r in rows)
    if format == "movielens-100k" and (source.parent / "u.item").exists():
        shutil.copy(source.parent / "u.item", folder / "u.item")
    return out


def ranking_metrics(ranks: list[int | None]) -> dict[str, float]:
    """HR@10 and NDCG@10 of the ranks (0-based) of the streamed items, None for a miss."""
    if not ranks:
        return {"hr": math.nan, "ndcg": math.nan}
    hits = [r for r in ranks if r is not None]
    return {"hr": len(hits) / len(ranks), "ndcg": sum(1.0 / math.log2(r + 2) for r in hits) / len(ranks)}


def rank_of(item: str, top: list[str]) -> int | None:
    return top.index(item) if item in top else None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


# --- implicit's ALS, folding users in with recalculate_user ------------------------------------------------------


def implicit_replay(train: list[Row], stream: list[Row], factors: int, seed: int) -> dict[str, dict]:
    """Frozen and live (``recalculate_user``) HR@10 and NDCG@10 of implicit's ALS on the split (module docstring)."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    users = {u: k for k, u in enumerate(dict.fromkeys(r.user for r in train))}
    items = {i: k for k, i in enumerate(dict.fromkeys(r.item for r in train))}
    rows = np.array([users[r.user] for r in train])
    cols = np.array([items[r.item] for r in train])
    matrix = sp.csr_matrix((np.ones(len(train), dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    popular = np.argsort(-np.asarray(matrix.sum(axis=0)).ravel(), kind="stable")
    model = AlternatingLeastSquares(factors=factors, random_state=seed, num_threads=os.cpu_count() or 1)
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model.fit(matrix, show_progress=False)
    fit_seconds = time.perf_counter() - started
    names = np.array(list(items))

    def row_of(seen: set[int]) -> sp.csr_matrix:
        cols = np.array(sorted(seen), dtype=np.int32)
        return sp.csr_matrix(
            (np.ones(cols.size, dtype=np.float32), (np.zeros(cols.size, dtype=np.int32), cols)), shape=(1, len(items))
        )

    def top(user: str, seen: set[int], live: bool) -> list[str]:
        if not seen or (not live and user not in users):
            return [str(x) for x in names[[p for p in popular if p not in seen][:K]]]
        ids, _ = model.recommend(
            users.get(user, 0), row_of(seen), N=K, filter_already_liked_items=True, recalculate_user=live
        )
        return [str(x) for x in names[ids]]

    history: dict[str, set[int]] = {}
    for r in train:
        history.setdefault(r.user, set()).add(items[r.item])
    frozen_top: dict[str, list[str]] = {}
    frozen, live, seconds = [], [], []
    for r in stream:
        trained = history.get(r.user, set()) if r.user in users else set()
        if r.user not in frozen_top:
            frozen_top[r.user] = top(r.user, trained, live=False)
        frozen.append(rank_of(r.item, frozen_top[r.user]))
        seen = history.setdefault(r.user, set())
        t0 = time.perf_counter()
        live.append(rank_of(r.item, top(r.user, seen, live=True)))
        seconds.append(time.perf_counter() - t0)
        if r.item in items:
            seen.add(items[r.item])
    return {
        "frozen": ranking_metrics(frozen),
        "live": ranking_metrics(live) | {"ms_p50": 1000 * percentile(seconds, 50), "fit_seconds": fit_seconds},
    }


# --- Chorus through HTTP -------------------------------------------------------------------------------------


@dataclass
class Gateway:
    url: str
    key: str
    method: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(30.0, connect=5.0))

    def top(self, user: str) -> tuple[list[str], float]:
        params = {"k": str(K)} | ({"method": self.method} if self.method else {})
        t0 = time.perf_counter()
        r = self.client.get(f"/v1/users/{quote(user, safe='')}/recommendations", params=params)
        seconds = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"GET recommendations for {user!r}: {r.status_code} {r.text[:300]}")
        return [entry["item_id"] for entry in r.json()["data"]], seconds

    def post(self, events: list[dict]) -> tuple[dict, float]:
        t0 = time.perf_counter()
        r = self.client.post("/v1/events", json={"events": events}, headers={"Authorization": f"Bearer {self.key}"})
        seconds = time.perf_counter() - t0
        if r.status_code in (404, 405):
            raise LiveUnavailable(
                f"the gateway answers POST /v1/events with {r.status_code}: this build has no events API "
                "(--frozen-only measures what runs without it)"
            )
        if r.status_code in (401, 403):
            raise LiveUnavailable(f"the gateway refused the API key ({r.status_code} {r.text[:200]})")
        if r.status_code not in (200, 201):
            raise RuntimeError(f"POST /v1/events: {r.status_code} {r.text[:300]}")
        body = r.json()
        if not {"stored", "duplicates"} <= set(body):
            raise LiveUnavailable(f"POST /v1/events answered {body!r}, not {{'stored', 'duplicates'}}")
        return body, seconds

    def close(self) -> None:
        self.client.close()


def event(row: Row, event_id: str) -> dict:
    return {
        "event_id": event_id,
        "user_id": row.user,
        "item_id": row.item,
        "kind": "rating",
        "rating": row.rating,
        "timestamp": row.timestamp,
    }


def chorus_frozen(gw: Gateway, stream: list[Row]) -> dict:
    tops: dict[str, list[str]] = {}
    ranks = []
    for r in stream:
        if r.user not in tops:
            tops[r.user] = gw.top(r.user)[0]
        ranks.append(rank_of(r.item, tops[r.user]))
    return ranking_metrics(ranks)


def chorus_live(gw: Gateway, stream: list[Row], label: str) -> dict:
    ranks: list[int | None] = []
    posts, after = [], []
    stale = hits = stale_hits = 0
    started = time.perf_counter()
    for n, r in enumerate(stream):
        ranks.append(rank_of(r.item, gw.top(r.user)[0]))
        body, seconds = gw.post([event(r, f"replay-{label}-{n}")])
        posts.append(seconds)
        if body["stored"] != 1:
            raise RuntimeError(f"event {n} was not stored: {body}")
        top, seconds = gw.top(r.user)
        after.append(seconds)
        stale += r.item in top
        if ranks[-1] is not None:  # it was recommended: once posted, it must be gone
            hits += 1
            stale_hits += r.item in top
        if n + 1 == min(200, len(stream)) and hits >= 5 and stale_hits == hits:
            raise LiveUnavailable(
                f"the services do not fold events in: each of the {hits} items posted in the first {n + 1} events "
                "that the user's top 10 listed was still listed right after the post"
            )
    wall = time.perf_counter() - started
    return ranking_metrics(ranks) | {
        "events_per_second": len(stream) / wall if wall else math.nan,
        "post_ms_p50": 1000 * percentile(posts, 50),
        "post_ms_p99": 1000 * percentile(posts, 99),
        "get_after_post_ms_p99": 1000 * percentile(after, 99),
        "stale": stale,
    }


async def _ingest(url: str, key: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Post ``bodies`` over ``clients`` keep-alive connections; return the seconds it took and each post's."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: chorus\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    )
    queue = iter(bodies)
    failures: list[str] = []
    seconds: list[float] = []

    async def client() -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, host, int(port))
        try:
            for body in queue:
                t0 = time.perf_counter()
                answer = await conn.send(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                seconds.append(time.perf_counter() - t0)
                if not answer.startswith((b"http/1.1 200", b"http/1.1 201")):
                    failures.append(answer.split(b"\r\n", 1)[0].decode())
        finally:
            conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} ingest posts failed, e.g. {failures[0]}")
    return wall, seconds


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user and system) process ``pid`` has used so far; NaN where ``/proc`` cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return math.nan


def ingest(
    gw: Gateway,
    items: list[str],
    label: str,
    single: int,
    batches: int,
    clients: int,
    batch_clients: int,
    seed: int,
    gateway_pid: int | None = None,
) -> dict:
    """Events per second posted one per request over ``clients`` connections, and in batches of :data:`BATCH`
    over ``batch_clients`` (new users only); each post's latency; the gateway's CPU time per 1,000 events; the
    load average when each part started (other work on the machine takes CPU from both sides)."""
    rng = np.random.default_rng(seed)

    def events(n: int, tag: str) -> list[dict]:
        picks = rng.integers(0, len(items), n)
        return [
            {
                "event_id": f"ingest-{label}-{tag}-{k}",
                "user_id": f"ingest-{label}-{tag}-{k % 997}",
                "item_id": items[int(p)],
                "kind": "rating",
                "rating": 4.0,
                "timestamp": 1.7e9 + k,
            }
            for k, p in enumerate(picks.tolist())
        ]

    ones = [json.dumps({"events": [e]}).encode() for e in events(single, "single")]
    many = events(batches * BATCH, "batch")
    chunks = [json.dumps({"events": many[b * BATCH : (b + 1) * BATCH]}).encode() for b in range(batches)]
    out: dict = {}
    for part, bodies, connections, count in (
        ("single", ones, clients, single),
        ("batch", chunks, batch_clients, batches * BATCH),
    ):
        if not bodies:
            continue
        load = os.getloadavg()[0]
        cpu, mine = cpu_seconds(gateway_pid), time.process_time()
        wall, seconds = asyncio.run(_ingest(gw.url, gw.key, bodies, connections))
        cpu, mine = cpu_seconds(gateway_pid) - cpu, time.process_time() - mine
        rate = "single_posts_per_second" if part == "single" else "batch_events_per_second"
        out |= {
            rate: count / wall,
            f"{part}_post_ms_p50": 1000 * percentile(seconds, 50),
            f"{part}_post_ms_p99": 1000 * percentile(seconds, 99),
            f"{part}_gateway_cpu_ms_per_1000": 1000 * cpu / count * 1000,
            f"{part}_client_cpu_ms_per_1000": 1000 * mine / count * 1000,
            f"{part}_load": load,
        }
    return out


# --- stores and processes ----------------------------------------------------------------------------------


@contextlib.contextmanager
def event_store(kind: str, work: Path, postgres_url: str) -> Iterator[str]:
    """A new, empty store's URL: a SQLite file in ``work``, or a schema of its own in PostgreSQL (dropped after)."""
    if kind == "sqlite":
        from chorus.shared.events.store import sqlite_url

        yield sqlite_url(work / "events.db")
        return
    import sqlalchemy as sa

    schema = f"chorus_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(sa.engine.make_url(postgres_url).set(drivername="postgresql+psycopg"))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError), admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run_store(args, dataset: str, kind: str, template: Path, work: Path, stream: list[Row], items: list[str]) -> dict:
    """The frozen and live figures of Chorus on one store: the real processes, started and stopped here."""
    from chorus.launcher import Topology

    root = work / f"artifacts-{kind}"
    shutil.copytree(template, root)
    result: dict = {}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(event_store(kind, work, args.postgres_url))
        key = secrets.token_urlsafe(32)
        topo = Topology.on_free_ports(
            root, redis_url=args.redis_url, log_dir=work / f"logs-{kind}", events_url=url, api_keys=key
        )
        stack.enter_context(topo)  # stops every service on the way out
        topo.start_all()
        topo.wait_ready("gateway", timeout=180)
        gw = Gateway(topo.url(), key, args.method)
        stack.callback(gw.close)
        result["frozen"] = chorus_frozen(gw, stream)
        say(f"{dataset}/{kind}: frozen HR@10 {result['frozen']['hr']:.4f}")
        if args.frozen_only:
            return result
        try:
            result["live"] = chorus_live(gw, stream, f"{dataset}-{kind}")
            say(f"{dataset}/{kind}: live HR@10 {result['live']['hr']:.4f}")
            result["ingest"] = ingest(
                gw,
                items,
                f"{dataset}-{kind}",
                args.single,
                args.batches,
                args.clients,
                args.batch_clients,
                args.seed,
                gateway_pid=topo.procs["gateway"].pid,
            )
        except LiveUnavailable as exc:
            result["error"] = str(exc)
            say(f"{dataset}/{kind}: live part unavailable: {exc} (logs in {topo.log_dir}, removed on exit)")
    return result


def say(message: str) -> None:
    print(f"replay: {message}", file=sys.stderr, flush=True)


def run_dataset(args, name: str, work: Path) -> dict:
    from chorus.training.train import parse_components, train

    relative, format = DATASETS[name]
    source = args.data_dir / relative
    if not source.is_file():
        raise SystemExit(f"replay: no {name} file at {source} (set --data-dir or CHORUS_DATA_DIR)")
    rows = read_rows(source, format)
    train_rows, stream = time_split(rows, args.train_fraction)
    streamed = len(stream)
    if args.limit_events:
        stream = stream[: args.limit_events]
    folder = work / name
    dump = write_dump(train_rows, source, format, folder / "data")
    started = time.perf_counter()
    template = folder / "template"
    train(dump, template, parse_components(None), seed=args.seed, format=format, progress=False, log=lambda _m: None)
    train_seconds = time.perf_counter() - started
    say(f"{name}: trained on {len(train_rows):,} rows in {train_seconds:.0f} s")
    say(f"{name}: replaying {len(stream):,} of {streamed:,} streamed events")
    items = list(dict.fromkeys(r.item for r in train_rows))
    out = {
        "rows": len(rows),
        "train_rows": len(train_rows),
        "streamed_rows": streamed,
        "replayed": len(stream),
        "train_seconds": train_seconds,
        "implicit_als": implicit_replay(train_rows, stream, args.als_factors, args.seed),
        "chorus": {},
    }
    for kind in args.stores:
        out["chorus"][kind] = run_store(args, name, kind, template, folder, stream, items)
    return out


COLUMNS = (
    ("dataset", None, ""),
    ("system", None, ""),
    ("HR@10 frozen", ("frozen", "hr"), ".4f"),
    ("live", ("live", "hr"), ".4f"),
    ("NDCG@10 frozen", ("frozen", "ndcg"), ".4f"),
    ("live", ("live", "ndcg"), ".4f"),
    ("events/s", ("live", "events_per_second"), ",.0f"),
    ("POST p50 ms", ("live", "post_ms_p50"), ".1f"),
    ("p99 ms", ("live", "post_ms_p99"), ".1f"),
    ("GET-after-POST p99 ms", ("live", "get_after_post_ms_p99"), ".1f"),
)
"""The replay's table: heading, where the figure is (part, name), its format."""
INGEST_COLUMNS = (
    ("dataset", None, ""),
    ("system", None, ""),
    ("1-event POSTs/s", ("ingest", "single_posts_per_second"), ",.0f"),
    ("p50 ms", ("ingest", "single_post_ms_p50"), ".1f"),
    ("p99 ms", ("ingest", "single_post_ms_p99"), ".1f"),
    ("gateway CPU ms/1,000", ("ingest", "single_gateway_cpu_ms_per_1000"), ",.0f"),
    ("client", ("ingest", "single_client_cpu_ms_per_1000"), ",.0f"),
    ("load", ("ingest", "single_load"), ".1f"),
    ("batched events/s", ("ingest", "batch_events_per_second"), ",.0f"),
    ("p50 ms", ("ingest", "batch_post_ms_p50"), ".1f"),
    ("p99 ms", ("ingest", "batch_post_ms_p99"), ".1f"),
    ("gateway CPU ms/1,000", ("ingest", "batch_gateway_cpu_ms_per_1000"), ",.0f"),
    ("client", ("ingest", "batch_client_cpu_ms_per_1000"), ",.0f"),
    ("load", ("ingest", "batch_load"), ".1f"),
)
"""The ingest's table (Chorus only): rates, each post's latency, CPU milliseconds per 1,000 events of the
gateway process and of this script's client, and the load average when each part began."""


def table(results: dict, columns: tuple = COLUMNS, peers: bool = True) -> str:
    """One aligned row per dataset and system (``peers``: implicit's too); ``-`` where a figure was not
    measured."""

    def cell(figures: dict, where: tuple[str, str] | None, spec: str) -> str:
        value = figures.get(where[0], {}).get(where[1]) if where else None
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    rows = [[heading for heading, _, _ in columns]]
    for name, r in results.items():
        systems = {"implicit ALS (fold-in)": r["implicit_als"]} if peers else {}
        systems |= {f"chorus, {k}": c for k, c in r["chorus"].items()}
        for system, figures in systems.items():
            rows.append([name, system] + [cell(figures, where, spec) for _, where, spec in columns[2:]])
    widths = [max(len(row[c]) for row in rows) for c in range(len(columns))]
    return "\n".join(
        "  ".join(v.ljust(w) if c < 2 else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("CHORUS_DATA_DIR", REPO.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--stores", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    ap.add_argument("--data-dir", type=Path, default=default_data)
    ap.add_argument(
        "--postgres-url",
        default=os.environ.get("CHORUS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="database the PostgreSQL runs make (and drop) a schema in (default $CHORUS_BENCH_DATABASE_URL)",
    )
    ap.add_argument("--redis-url", help="cache in this Redis (default: each gateway's in-process LRU)")
    ap.add_argument("--limit-events", type=int, default=2000, help="replay the first N streamed events (0: all)")
    ap.add_argument("--train-fraction", type=float, default=0.8)
    ap.add_argument("--method", help="ranker of the recommendations (default: the served one)")
    ap.add_argument("--frozen-only", action="store_true", help="skip the live replay and the ingest")
    ap.add_argument("--single", type=int, default=2000, help="single-event POSTs of the ingest")
    ap.add_argument("--batches", type=int, default=20, help="batches of 1,000 events of the ingest")
    ap.add_argument("--clients", type=int, default=8, help="connections posting single events at once (ingest)")
    ap.add_argument("--batch-clients", type=int, default=4, help="connections posting batches at once (ingest)")
    ap.add_argument("--als-factors", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if not 0 < args.train_fraction < 1 or args.limit_events < 0:
        ap.error("--train-fraction must lie in (0, 1) and --limit-events be 0 or more")

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="chorus-replay-") as tmp:
        for name in args.datasets:
            results[name] = run_dataset(args, name, Path(tmp))
    print(f"machine: {machine()}")
    print(f"time-ordered replay: train on the first {args.train_fraction:.0%} of rows, then stream")
    print(table(results))
    if not args.frozen_only and (args.single or args.batches):
        print(
            f"ingest: {args.single:,} single-event POSTs over {args.clients} connections, {args.batches} batches of "
            f"{BATCH:,} over {args.batch_clients}; new users only"
        )
        print(table(results, INGEST_COLUMNS, peers=False))
    errors = [f"{d}/{k}: {c['error']}" for d, r in results.items() for k, c in r["chorus"].items() if "error" in c]
    for line in errors:
        print(f"live part not measured: {line}", file=sys.stderr)
    write_json(
        args.json, {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""``chorus train``: load a review dump, build the requested components, publish one artifact version.

Every version holds the ``data`` component (ratings, vocabularies, titles) and the dataset statistics; the
components named on the command line are trained from it, each by the module beside the core of the service
that serves it (``services/<name>/``), through one function::

    train_component(ratings: chorus.shared.data.Ratings, writer: chorus.shared.artifacts.VersionWriter, *,
                    seed: int, progress: bool, workers: int) -> dict   # a summary printed by the CLI

``workers`` (``--workers``, ``CHORUS_WORKERS``, default every available core) is how many cores a component may
use; the artifact is the same for any number (see :mod:`chorus.shared.workers`). With two or more, the components
of :data:`BESIDE` train in processes of their own on one worker each, beside the others (:class:`Beside`).

A component that is not retrained is carried over from the current version when that version was built
from the same data file (same sha256) and the same events (store and cutoff), so ``--components rating`` does not
throw the similarity table away.

With ``--events-url`` the training data is the dump plus the event store's events up to its highest ``seq`` (the
version's cutoff, recorded in the manifest), minus the users forgotten by then: :mod:`chorus.training.events`.
Components train in the order of :data:`COMPONENTS`; ``ranking`` (the top-N rankers, selected on validation
NDCG and refitted on every row) comes after ``rating``, and ``text`` (the review scorer of
``POST /v1/reviews/score``) last. A trainer may answer ``{"not_trained": reason}`` (the text component on data
without review text, e.g. MovieLens): one log line says so and the other components are published.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import multiprocessing
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias, cast

from chorus.shared.artifacts import ArtifactStore, Version, VersionWriter, file_fingerprint
from chorus.shared.contract.errors import ArtifactError, ChorusError, InvalidInput
from chorus.shared.data import TEXT_FORMATS, Ratings, check_trainable, dataset_stats, load_ratings
from chorus.shared.data.component import save_data_component
from chorus.shared.events.rows import CUTOFF_KEY, cutoff_of
from chorus.shared.events.store import EventStore
from chorus.shared.report_component import COMPONENT as REPORT
from chorus.shared.workers import can_fork, resolve_workers, using_workers
from chorus.training.malloc import heap_blocks, map_large_blocks
from chorus.training.rating.config import TEXT_AWARE_MAX_ROWS
from chorus.training.say import trained

Trainer: TypeAlias = Callable[..., dict[str, Any]]
"""A component's ``train_component`` (the signature above), the numpy engine's or :mod:`.spark_engine`'s."""

#: component name -> "module:function" of its trainer
COMPONENTS: dict[str, str] = {
    "similarity": "chorus.training.similarity.build:train_component",
    "rating": "chorus.training.rating.train:train_component",
    "ranking": "chorus.training.ranking.train:train_component",
    "text": "chorus.training.text.fit:train_component",
}


#: ``--engine`` values: the numpy engine (this machine, ``--workers`` cores) or Spark
#: (:mod:`chorus.training.spark_engine`)
ENGINES = ("numpy", "spark")


def trainer(component: str) -> Trainer:
    if component not in COMPONENTS:
        raise InvalidInput(f"unknown component {component!r}: expected one of {', '.join(COMPONENTS)}")
    module, func = COMPONENTS[component].split(":")
    return cast(Trainer, getattr(importlib.import_module(module), func))


def parse_components(text: str | None) -> list[str]:
    if not text:
        return list(COMPONENTS)
    names = [c.strip() for c in text.split(",") if c.strip()]
    for c in names:
        trainer(c)  # validates the name
    return names


#: The components that gain little from more workers (the text models are a sequence of scikit-learn fits; the
#: similarity table's blocks are short): with ``--workers`` 2 or more each trains in a forked process of its own,
#: on one worker, beside the other components, which share the workers. Every component's arrays are the same
#: for any number of workers, so where a component runs changes nothing in the version.
BESIDE = ("text", "similarity")


def text_loading(components: list[str]) -> dict[str, Any]:
    """The :func:`~chorus.shared.data.load_ratings` arguments that keep the review text the ``components`` read,
    and no more. Held as Python strings, text is the largest column (about 145 bytes a generated review against
    about 35 for the ratings themselves), and of the components only two read it: ``text`` (the review scorer),
    at any size, and ``rating``, whose text-aware model competes only on data of at most
    :data:`~chorus.training.rating.config.TEXT_AWARE_MAX_ROWS` reviews. For ``rating`` the loader keeps the
    text while the rows it has accepted are within that limit and drops it once they pass it (``text_max_rows``),
    so the decision is made while reading the file once, and a large file's text is never held."""
    if "text" in components:
        return {"with_text": True}
    if "rating" in components:
        return {"with_text": True, "text_max_rows": TEXT_AWARE_MAX_ROWS}
    return {}


def _text_missing(components: list[str], ratings: Ratings) -> bool:
    """Whether the text-aware rating model needs review text that was not kept: the events' forgotten users
    brought a file over :data:`~chorus.training.rating.config.TEXT_AWARE_MAX_ROWS` reviews within it."""
    return (
        "rating" in components
        and ratings.text is None
        and ratings.report.format in TEXT_FORMATS
        and ratings.n <= TEXT_AWARE_MAX_ROWS
    )


def _call(
    fit: Trainer, ratings: Ratings, writer: VersionWriter, seed: int, progress: bool, workers: int
) -> dict[str, Any]:
    takes_workers = "workers" in inspect.signature(fit).parameters
    return fit(ratings, writer, seed=seed, progress=progress, **({"workers": workers} if takes_workers else {}))


class Beside:
    """One component trained in a forked child process on one worker, without a progress bar, while the parent
    goes on: the child writes its files into the version being written (the same directory) and sends back its
    summary and its manifest entry, which :meth:`join` merges into ``writer``."""

    def __init__(self, component: str, fit: Trainer, ratings: Ratings, writer: VersionWriter, seed: int) -> None:
        self.component = component
        self.writer = writer
        self.seconds: float | None = None
        ctx = multiprocessing.get_context("fork")
        self._conn, there = ctx.Pipe(duplex=False)

        def run() -> None:
            t0 = time.perf_counter()
            try:
                with using_workers(1):
                    summary = _call(fit, ratings, writer, seed, False, 1)
                entry = writer.manifest["components"].get(component)
                there.send(("ok", summary, entry, time.perf_counter() - t0))
            except ChorusError as exc:  # the parent raises the same error, with its message
                there.send(("error", type(exc).__name__, exc.detail, None))
            except BaseException:
                there.send(("crash", traceback.format_exc(), None, None))

        # not a daemon: a component may start processes of its own, which daemons may not
        self._proc = ctx.Process(target=run, name=f"chorus-train-{component}", daemon=False)
        self._proc.start()
        there.close()

    def stop(self) -> None:
        """End the process if it still runs (the parent failed, or another component did)."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join()

    def running(self) -> bool:
        """Whether the component is still training."""
        return not self._conn.poll()

    def join(self) -> dict[str, Any]:
        """The component's summary, once its process is done; its manifest entry is then in the writer.

        Raises
        ------
        ChorusError : the error the component raised (the same class, by name, where it is one of Chorus's).
        RuntimeError : the process failed otherwise, or died.
        """
        try:
            status, first, entry, seconds = self._conn.recv()
        except EOFError:
            status, first, entry, seconds = "crash", "its process died", None, None
        finally:
            self._conn.close()
            self._proc.join()
        if status == "error":
            raise _ERRORS.get(first, InvalidInput)(entry)
        if status != "ok":
            raise RuntimeError(f"training the {self.component} component failed:\n{first}")
        if entry is not None:
            self.writer.manifest["components"][self.component] = entry
        self.seconds = seconds
        summary: dict[str, Any] = first
        return summary


_ERRORS: dict[str, type[ChorusError]] = {cls.__name__: cls for cls in (InvalidInput, ArtifactError)}


def _reusable(
    store: ArtifactStore,
    sha256: str,
    events: dict[str, Any] | None,
    retrained: list[str],
    log: Callable[[str], object],
) -> tuple[list[str], Version | None]:
    """Components of the current version worth carrying over: built from the same data file and the same events
    (store and cutoff; none when ``events`` is None) and not being retrained. Only those are verified (checksums),
    and only when there is something to reuse."""
    try:
        name = store.current()
        if name is None:
            return [], None
        manifest = store.open(name, components=[], verify=False).manifest
        if manifest["dataset"].get("fingerprint", {}).get("sha256") != sha256:
            return [], None
        recorded = manifest.get("events") or {}
        same_events = (
            cutoff_of(manifest) == 0 and not recorded
            if events is None
            else (cutoff_of(manifest), recorded.get("store")) == (events["cutoff"], events["store"])
        )
        if not same_events:
            return [], None
        reuse = [c for c in manifest["components"] if c != "data" and c not in retrained]
        if not reuse:
            return [], None
        return reuse, store.open(name, components=reuse, verify=True)
    except ArtifactError as exc:
        log(f"note: the current version cannot be reused ({exc.detail})")
        return [], None


def train(
    data: str | Path,
    artifacts: str | Path,
    components: list[str],
    *,
    seed: int = 0,
    format: str | None = None,
    keep: int = 5,
    progress: bool = True,
    log: Callable[[str], object] = print,
    workers: int | None = None,
    engine: str = "numpy",
    spark_master: str | None = None,
    spark_staging: str | Path | None = None,
    events_url: str | None = None,
    record: dict[str, Any] | None = None,
) -> str:
    """Train ``components`` on ``data`` into a new version under ``artifacts``; return the version name.
    ``workers``: :func:`chorus.shared.workers.resolve_workers`. ``engine``: ``numpy`` (this machine) or
    ``spark`` (:mod:`chorus.training.spark_engine`: similarity and rating on Spark at ``spark_master``, default
    ``spark-submit``'s master, else ``local[*]``, staging the data under ``spark_staging``). ``events_url``: also
    train on the events of that store up to its highest ``seq``, without the forgotten users
    (:mod:`chorus.training.events`); the store is read before anything is written, and a store that cannot be
    read publishes nothing. ``record``, when given, is filled with what ``chorus train --json`` prints: the data's
    statistics, each component's summary and seconds, the components kept, the version and the seconds in all.
    The version holds the evaluation report (:func:`chorus.training.report.version_report`)."""
    if engine not in ENGINES:
        raise InvalidInput(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine != "spark" and (spark_master or spark_staging):
        raise InvalidInput("--spark-master and --spark-staging go with --engine spark")
    map_large_blocks()
    with contextlib.ExitStack() as stack:
        store = None
        if events_url is not None:
            from chorus.training.events import open_store

            store = open_store(events_url)
            stack.callback(store.close)
        trainers: dict[str, Trainer] = {}
        if engine == "spark":
            from chorus.training.spark_engine import SparkEngine

            spark = stack.enter_context(SparkEngine(spark_master, spark_staging))
            trainers = spark.trainers()
        return _train(data, artifacts, components, seed, format, keep, progress, log, workers, trainers, store, record)


def _train(
    data: str | Path,
    artifacts: str | Path,
    components: list[str],
    seed: int,
    format: str | None,
    keep: int,
    progress: bool,
    log: Callable[[str], object],
    workers: int | None,
    trainers: dict[str, Trainer],
    store: EventStore | None = None,
    record: dict[str, Any] | None = None,
) -> str:
    start = time.perf_counter()
    record = {} if record is None else record
    workers = resolve_workers(workers)
    events: dict[str, Any] | None = None
    if store is not None:
        from chorus.training.events import read_cutoff, with_events

        cutoff = read_cutoff(store)  # once, first: the version holds the events up to here, the services the rest
    ratings = load_ratings(data, format=format, progress=progress, **text_loading(components))
    loaded = dataset_stats(ratings)
    log(
        f"loaded {loaded['reviews']:,} reviews ({loaded['users']:,} users, {loaded['items']:,} items; "
        f"{loaded['skipped_rows']:,} rows skipped) in {time.perf_counter() - start:.1f} s"
    )
    if store is not None:
        ratings, added = with_events(ratings, store, cutoff)
        if _text_missing(components, ratings):  # forgotten users brought a file over the limit within it
            ratings, added = with_events(
                load_ratings(data, format=format, progress=progress, with_text=True), store, cutoff
            )
        events = added.to_dict()
        log(added.describe())
    check_trainable(ratings)  # before any component trains: each would fail later on too little data
    stats = dataset_stats(ratings) if store is not None else loaded
    fingerprint = file_fingerprint(data, ratings.report.format)
    # the report is written anew into every version (it describes the kept components too)
    retrained = [*components, REPORT]
    reuse, previous = _reusable(ArtifactStore(artifacts), fingerprint["sha256"], events, retrained, log)
    record.update(data=stats, components={}, skipped={}, kept=reuse)
    with VersionWriter(artifacts) as writer, contextlib.ExitStack() as stack:
        writer.set_dataset(fingerprint, stats)
        if events is not None:
            writer.manifest[CUTOFF_KEY] = events["cutoff"]
            writer.manifest["events"] = events
        save_data_component(writer, ratings)
        # with several workers, the components that gain little from them start first, each in a process of
        # its own on one worker, and the rest share the workers meanwhile: every core stays busy
        beside = {
            c: Beside(c, trainer(c), ratings, writer, seed)
            for c in components
            if workers > 1 and c in BESIDE and c not in trainers and can_fork()
        }
        for child in beside.values():  # a failure here or in a child stops the others
            stack.callback(child.stop)
        started = time.perf_counter()

        def said(component: str, seconds: float, summary: dict[str, Any]) -> None:
            if "not_trained" in summary:  # e.g. the text component on data without review text
                record["skipped"][component] = summary["not_trained"]
                log(f"skipped {component}: {summary['not_trained']}")
                return
            record["components"][component] = summary | {"seconds": round(seconds, 2)}
            for line in trained(component, seconds, summary):
                log(line)

        for component in components:
            if component in beside:
                continue
            t0 = time.perf_counter()
            with using_workers(workers):
                fit = trainers.get(component) or trainer(component)
                summary = _call(fit, ratings, writer, seed, progress, workers)
            said(component, time.perf_counter() - t0, summary)
        for component, child in beside.items():
            if child.running():
                log(f"waiting for the {component} component, training beside the others")
            summary = child.join()
            said(component, child.seconds or time.perf_counter() - started, summary)
        for component in reuse:
            assert previous is not None  # reuse is empty without a previous version
            writer.adopt_component(previous, component)
            log(f"kept {component} from version {previous.name} (same data file{' and events' if events else ''})")
        from chorus.training.report import version_report  # matplotlib and the rankers: loaded when used

        with heap_blocks():
            version_report(ratings, writer, Path(data).name, seed=seed, progress=progress, workers=workers)
        version = writer.commit(keep=keep)
    record.update(version=version, artifacts=str(artifacts), seconds=round(time.perf_counter() - start, 2))
    log(
        f"published version {version} in {Path(artifacts)} with its evaluation report (served at /report), "
        f"{time.perf_counter() - start:.1f} s in all"
    )
    return version

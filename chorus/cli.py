"""The ``chorus`` command: data statistics, demo data, training, evaluation, artifacts and serving.

Every subcommand has ``--help``. Errors a user can fix print ``chorus: error: <what and where>`` and exit 1;
usage errors exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from chorus.demo import DEFAULT_DEMO, DEMO_REVIEWS
from chorus.shared.contract.errors import ChorusError

DEFAULT_ARTIFACTS = "artifacts"

#: The packages of the ``train`` extra: the services run without them, training and evaluation need them.
TRAINING_PACKAGES = ("numba", "implicit", "sklearn", "matplotlib")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 366 * 86400


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30m``, ``1h``, ``1h30m``, ``45s`` or ``2d`` (units s, m, h, d; each part a
    number, whole or decimal).

    Raises
    ------
    argparse.ArgumentTypeError : anything else, a zero duration, or more than a year.
    """
    import re

    parts = re.fullmatch(r"(?:\d+(?:\.\d+)?[smhd])+", text.strip())
    if parts is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30m, 1h or 1h30m (units s, m, h, d), got {text!r}"
        )
    seconds = sum(float(n) * DURATION_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text))
    if not 0 < seconds <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"expected a duration of more than 0 and at most 366d, got {text!r}")
    return seconds


def _events_url_arg(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--events-url",
        default=os.environ.get("CHORUS_EVENTS_URL") or None,
        metavar="URL",
        help=help,
    )


MAX_GENERATED = 50_000_000  # about 10 GB of memory while generating; beyond that, generate in parts


def _review_count(text: str) -> int:
    value = _positive(text)
    if value > MAX_GENERATED:
        raise argparse.ArgumentTypeError(f"at most {MAX_GENERATED:,} reviews per file, got {value:,}")
    return value


def _formats():
    from chorus.shared.data import FORMATS

    return FORMATS


def _print_skipped(examples: list[tuple[int, str, str]], skipped: int, format: str) -> None:
    """The first skipped rows, each with what such a row must hold, on stderr."""
    from chorus.shared.data.loaders import describe_skip

    if not examples:
        return
    shown = f"; {len(examples)} of them" if len(examples) < skipped else ""
    print(f"{skipped:,} row{'s' if skipped != 1 else ''} skipped{shown}:", file=sys.stderr)
    for line, reason, text in sorted(examples):
        print(f"  {describe_skip(line, reason, text, format)}", file=sys.stderr)


def cmd_stats(args: argparse.Namespace) -> int:
    from chorus.shared.data import dataset_stats, format_stats, load_ratings

    ratings = load_ratings(args.data, format=args.format, progress=not args.json)
    stats = dataset_stats(ratings)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"{args.data} ({ratings.report.format})")
        print(format_stats(stats))
        _print_skipped(ratings.report.examples, ratings.report.skipped_rows, ratings.report.format)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from chorus.shared.data.synthetic import generate_reviews

    out = generate_reviews(args.out, args.reviews, seed=args.seed)
    print(f"wrote {args.reviews:,} reviews to {out}")
    return 0


def _workers_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="cores to use (default $CHORUS_WORKERS, else every available core); results do not depend on it",
    )


def _train_args(args: argparse.Namespace) -> list[str]:
    """The arguments of ``chorus train`` that repeat this one's, without ``--every`` and ``--events-url`` (the child
    reads the store's URL from ``CHORUS_EVENTS_URL``, which no other local user can read, unlike a command line)."""
    options = ("data", "artifacts", "format", "components", "seed", "keep", "workers", "engine")
    out: list[str] = []
    for name in (*options, "spark_master", "spark_staging"):
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from chorus.training.train import parse_components, train

    components = parse_components(args.components)
    if args.every is not None:
        if args.events_url is None:
            raise ChorusError("--every retrains when new events arrive: it needs --events-url (or CHORUS_EVENTS_URL)")
        if args.json:
            raise ChorusError("--json prints the record of one training run; leave it out with --every")
        from chorus.launcher import retrain_loop

        return retrain_loop(Path(args.artifacts), _train_args(args), args.events_url, args.every)
    record: dict[str, Any] = {}
    version = train(
        args.data,
        args.artifacts,
        components,
        seed=args.seed,
        format=args.format,
        keep=args.keep,
        workers=args.workers,
        engine=args.engine,
        spark_master=args.spark_master,
        spark_staging=args.spark_staging,
        events_url=args.events_url,
        log=(lambda _line: None) if args.json else print,
        progress=not args.json,
        record=record,
    )
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        _print_skipped_of(Path(args.artifacts), version)
    return 0


def _print_skipped_of(artifacts: Path, version: str) -> None:
    """The rows of the data file that version ``version`` skipped, as its manifest records them."""
    from chorus.shared.artifacts import ArtifactStore

    meta = ArtifactStore(artifacts).open(version, components=[], verify=False).component_meta("data")
    report = meta.get("load_report", {})
    examples = [(e["line"], e["reason"], e["text"]) for e in report.get("examples", [])]
    _print_skipped(examples, int(report.get("skipped_rows", 0)), str(meta.get("format", "")))


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the demo data when it is not there yet, train every component, print the statistics."""
    from chorus.demo import ensure_demo_data
    from chorus.shared.artifacts import ArtifactStore
    from chorus.shared.data import format_stats
    from chorus.training.train import parse_components, train

    data = ensure_demo_data(args.data, args.reviews, seed=args.seed)
    version = train(data, args.artifacts, parse_components(None), seed=args.seed)
    print(
        format_stats(
            ArtifactStore(args.artifacts).open(version, components=[], verify=False).manifest["dataset"]["stats"]
        )
    )
    return 0


def _relevance(text: str) -> str:
    """``any`` or ``min_rating=<number>``, checked here so that a bad value is a usage error naming it."""
    from chorus.shared.contract.errors import InvalidInput
    from chorus.training.ranking.train import parse_relevance, relevance_name

    try:
        return relevance_name(parse_relevance(text))
    except InvalidInput:
        raise argparse.ArgumentTypeError(f"expected 'any' or 'min_rating=<number>', got {text!r}") from None


RANKING_ONLY = ("k", "relevance")
RATING_ONLY = ("protocol", "folds", "no_similarity")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from chorus.shared.data import load_ratings
    from chorus.training.evaluate import TEXT_TASKS, evaluate, format_ranking_report, format_report, ranking

    with_text = args.task != "ranking"  # the text tasks, and the text-aware rating model where there is text
    ratings = load_ratings(args.data, format=args.format, progress=not args.json, with_text=with_text)
    results: dict[str, dict[str, Any]] = {}
    reports: list[Callable[[dict[str, Any]], str]] = []
    if args.task in ("rating", "all"):
        results["rating"] = evaluate(
            ratings,
            protocol=args.protocol,
            folds=args.folds,
            seed=args.seed,
            with_similarity=not args.no_similarity,
            workers=args.workers,
            progress=not args.json,
        )
        reports.append(format_report)
    if args.task in ("ranking", "all"):
        results["ranking"] = ranking(
            ratings, k=args.k, seed=args.seed, relevance=args.relevance, workers=args.workers, progress=not args.json
        )
        reports.append(format_ranking_report)
    if args.task in TEXT_TASKS:
        results[args.task], report = TEXT_TASKS[args.task](ratings, seed=args.seed, progress=not args.json)
        reports.append(report)
    written = None
    if args.report is not None:
        from chorus.training.report import evaluation_report, write

        written = write(args.report, evaluation_report(ratings, Path(args.data).name, results, progress=not args.json))
    if args.json:
        print(json.dumps(results[args.task] if args.task in results else results, indent=2))
        return 0
    print(f"{args.data}: {ratings.n:,} reviews, {ratings.n_users:,} users, {ratings.n_items:,} items")
    for report, result in zip(reports, results.values(), strict=True):
        print()
        print(report(result))
    if written is not None:
        print(f"\nReport written to {written}.")
    return 0


def cmd_artifacts_list(args: argparse.Namespace) -> int:
    from chorus.shared.artifacts import ArtifactStore

    store = ArtifactStore(args.artifacts)
    try:
        current = store.current()
    except ChorusError as exc:  # list the versions anyway: they are what `chorus artifacts use` repairs it with
        print(f"note: {exc.detail}")
        current = None
    versions = store.versions()
    if not versions:
        print(f"no versions in {args.artifacts}")
        return 0
    for name in versions:
        mark = "*" if name == current else " "
        try:
            manifest = store.open(name, components=[], verify=False).manifest
            stats = manifest["dataset"]["stats"]
            comps = ",".join(c for c in sorted(manifest["components"]) if c != "data")
            print(f"{mark} {name}  {manifest['created']}  {stats['reviews']:>10,} reviews  {comps}")
        except ChorusError as exc:  # one damaged version must not hide the others (they are what to roll back to)
            print(f"{mark} {name}  unusable: {exc.detail}")
        except (KeyError, TypeError, AttributeError):
            print(f"{mark} {name}  unusable: its manifest lacks the expected fields")
    return 0


def cmd_artifacts_verify(args: argparse.Namespace) -> int:
    from chorus.shared.artifacts import ArtifactStore

    version = ArtifactStore(args.artifacts).open(args.version)
    files = sum(len(c["files"]) for c in version.manifest["components"].values())
    print(f"{version.name}: {files} files match their manifest (sha256, size, shape, dtype)")
    return 0


def cmd_artifacts_use(args: argparse.Namespace) -> int:
    from chorus.shared.artifacts import ArtifactStore, set_current

    ArtifactStore(args.artifacts).open(args.version)  # verified before it is served
    set_current(args.artifacts, args.version)
    print(f"CURRENT is now {args.version}; running services switch to it at their next reload check")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from chorus.launcher import up

    if args.format is not None and args.data is None:
        raise ChorusError("--format is the format of the --data file: name the file with --data")

    return up(
        Path(args.artifacts),
        args.data,
        args.port,
        args.redis_url,
        args.similarity_port,
        args.rating_port,
        Path(args.log_dir) if args.log_dir else None,
        events_url=args.events_url,
        retrain_every=args.retrain_every,
        format=args.format,
    )


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="review file (Amazon TSV/JSON lines, MovieLens; .gz ok)")
    parser.add_argument("--format", choices=_formats(), help="file format (default: detect)")


def _artifacts_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, help="artifact root (default ./artifacts)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chorus",
        description="Chorus: recommendations from product-review dumps (similar items, because-you-liked, "
        "predicted ratings).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="inspect review files and generate demo data")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    stats = dsub.add_parser("stats", help="dataset statistics of a review file")
    _data_args(stats)
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=cmd_stats)
    gen = dsub.add_parser("generate", help="write synthetic reviews in the Amazon TSV format")
    gen.add_argument("--out", required=True, help="output file; .gz compresses")
    gen.add_argument("--reviews", type=_review_count, required=True, help="exact number of data rows")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.set_defaults(func=cmd_generate)

    train = sub.add_parser("train", help="train components and publish an artifact version")
    _data_args(train)
    _artifacts_arg(train)
    train.add_argument("--components", help="comma-separated: similarity,rating,ranking,text (default: all)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--keep", type=_positive, default=5, help="versions to keep (default 5)")
    _workers_arg(train)
    train.add_argument(
        "--engine",
        choices=("numpy", "spark"),
        default="numpy",
        help="numpy: this machine (default); spark: similarity and rating on Apache Spark (pip install -e '.[spark]')",
    )
    train.add_argument(
        "--spark-master", help="with --engine spark: Spark master URL (default: spark-submit's, else local[*])"
    )
    train.add_argument(
        "--spark-staging", help="with --engine spark: folder every executor can read, for the staged ratings"
    )
    _events_url_arg(
        train,
        "also train on the events of this store (sqlite:///path or postgresql://...) up to its last one, without "
        "the users forgotten by then; default $CHORUS_EVENTS_URL",
    )
    train.add_argument(
        "--every",
        type=parse_duration,
        metavar="DURATION",
        help="keep running: train now when there is no version or the store has events past the current version's, "
        "then check again every DURATION (30m, 1h, 1h30m ...); needs --events-url",
    )
    train.add_argument(
        "--json",
        action="store_true",
        help="print one JSON record at the end (data statistics, each component's summary, the version) instead "
        "of sentences",
    )
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="test-set MSE/RMSE/MAE of the rating models, or top-N quality of the rankers (--task ranking)",
        description="Select hyperparameters on validation data carved from the training rows only, "
        "refit, and report the error (--task rating) or the top-N ranking quality (--task ranking: precision, "
        "recall, NDCG, MAP, coverage, novelty at k on a per-user 80/20 holdout) on held-out test rows.",
    )
    _data_args(ev)
    ev.add_argument(
        "--task",
        choices=("rating", "ranking", "all", "verified", "text-rating"),
        default="rating",
        help="rating: predicted-rating error (default); ranking: top-N lists of every ranker; all: both; verified: "
        "verified-purchase classification (BER) from review text; text-rating: star rating from review text (MSE)",
    )
    ev.add_argument(
        "--protocol",
        choices=("holdout", "kfold"),
        default=None,
        help="rating only. holdout: 80/10/10 train/validation/test; kfold: k test folds (default holdout)",
    )
    ev.add_argument("--folds", type=_positive, default=None, help="rating only: folds for --protocol kfold (default 5)")
    ev.add_argument("--seed", type=int, default=0, help="split and initialisation seed (default 0)")
    ev.add_argument(
        "--no-similarity", action="store_true", default=None, help="rating only: skip the (slower) similarity heuristic"
    )
    ev.add_argument("--k", type=_positive, default=None, help="ranking only: list length (default 10)")
    ev.add_argument(
        "--relevance",
        type=_relevance,
        default=None,
        help="ranking only: 'any' (every held-out item is relevant; default) or 'min_rating=4' (only those rated "
        "at least 4)",
    )
    ev.add_argument("--json", action="store_true", help="print JSON (with --task all: one object per task)")
    ev.add_argument(
        "--report",
        metavar="FILE",
        help="also write an HTML report with plots to FILE (one self-contained file: NDCG and recall at every k, "
        "coverage, novelty, the long tail, rating error per fold); for --task rating, ranking or all",
    )
    _workers_arg(ev)
    ev.set_defaults(func=cmd_evaluate, subparser=ev)

    art = sub.add_parser("artifacts", help="list, verify and roll back artifact versions")
    asub = art.add_subparsers(dest="artifacts_command", required=True, metavar="COMMAND")
    al = asub.add_parser("list", help="versions, newest last; * marks CURRENT")
    al.set_defaults(func=cmd_artifacts_list)
    av = asub.add_parser("verify", help="check every file of a version against its manifest")
    av.add_argument("version", nargs="?", help="version name (default: CURRENT)")
    av.set_defaults(func=cmd_artifacts_verify)
    au = asub.add_parser("use", help="verify a version and make it CURRENT (roll back or forward)")
    au.add_argument("version", help="version name")
    au.set_defaults(func=cmd_artifacts_use)
    for p in (al, av, au):
        _artifacts_arg(p)

    demo = sub.add_parser("demo", help="generate demo data, train on it and print its statistics")
    demo.add_argument("--data", default=DEFAULT_DEMO, help=f"demo data file (default {DEFAULT_DEMO})")
    demo.add_argument("--reviews", type=_review_count, default=DEMO_REVIEWS, help="reviews to generate")
    _artifacts_arg(demo)
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=cmd_demo)
    upp = sub.add_parser(
        "up",
        help="run the similarity, rating and gateway services on loopback",
        description="Start the three services as local processes (the docker-compose topology), "
        "training first when the artifact root has no version yet (or none trained on --data); a service "
        "that exits is restarted after 1, 2, 4 ... at most 30 s; Ctrl-C or SIGTERM stops them all.",
    )
    _artifacts_arg(upp)
    upp.add_argument(
        "--data",
        help="review file to serve: trained on when there is no version yet or the current version was trained on "
        "other data (by sha256); default: the current version, else demo data",
    )
    upp.add_argument("--format", choices=_formats(), help="format of the --data file (default: detect)")
    upp.add_argument("--port", type=_positive, default=8000, help="gateway port (default 8000)")
    upp.add_argument("--similarity-port", type=_positive, default=8001, help="similarity service port")
    upp.add_argument("--rating-port", type=_positive, default=8002, help="rating service port")
    upp.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis for the cache (default $REDIS_URL; without it an in-process LRU cache)",
    )
    upp.add_argument("--log-dir", help="write each service's log here (default: this terminal)")
    _events_url_arg(
        upp,
        "event store of every service (sqlite:///path or postgresql://...); default $CHORUS_EVENTS_URL, else "
        "events.db in the artifact root, created on first start",
    )
    upp.add_argument(
        "--retrain-every",
        type=parse_duration,
        metavar="DURATION",
        help="every DURATION (30m, 1h, 1h30m ...), retrain in the background when new events arrived; the services "
        "switch to the new version by themselves (default: never)",
    )
    upp.set_defaults(func=cmd_up)
    return parser


def _evaluate_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse options of the other task (usage error, exit 2), then fill in the defaults of this one."""
    owner = dict.fromkeys(RATING_ONLY, "rating") | dict.fromkeys(RANKING_ONLY, "ranking")
    names = [name for name, task in owner.items() if args.task not in (task, "all") and getattr(args, name) is not None]
    if names:
        given = [f"--{name.replace('_', '-')}" for name in names]
        task = owner[names[0]]
        parser.error(f"{' and '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to --task {task} or all")
    if args.report is not None and args.task not in ("rating", "ranking", "all"):
        parser.error(
            f"--report shows the rating and ranking evaluations: use --task rating, ranking or all, not {args.task}"
        )
    defaults = {"protocol": "holdout", "folds": 5, "no_similarity": False, "k": 10, "relevance": "any"}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        _evaluate_defaults(args.subparser, args)
    try:
        return cast(int, args.func(args))  # every cmd_* returns the exit status
    except ModuleNotFoundError as exc:
        if exc.name not in TRAINING_PACKAGES:
            raise
        print(
            f"chorus: error: chorus {args.command} needs the training dependencies ({exc.name} is not installed): "
            "pip install 'chorus-recommender[train]' (from a clone: pip install -e '.[train]')",
            file=sys.stderr,
        )
        return 1
    except ChorusError as exc:
        print(f"chorus: error: {exc.detail}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path that is a directory, not writable, a full disk ...
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"chorus: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except MemoryError:
        print("chorus: error: out of memory; try a smaller --reviews or dataset", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("chorus: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

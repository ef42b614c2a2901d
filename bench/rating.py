"""Rating benchmark: MSE/RMSE/MAE and seconds of every rating model, 5-fold cross-validation.

Models: ``mean`` (global mean), ``bias`` (α + β_u + β_i), ``latent`` (biases + K factors, ALS, K and λ
selected on a validation split inside each training fold) and ``similarity`` (the similarity core's rating
heuristic, when ``chorus.services.similarity`` is importable; ``--no-similarity`` skips it). Test folds are never seen
by the selection. Anchors measured on this machine with Surprise (5-fold, shuffled):

* MovieLens 100K: SVD RMSE 0.9344 (6.2 s), SVD++ 0.9187 (86 s), BaselineOnly 0.9440.
  Targets: latent RMSE <= 0.905; the whole 5-fold run of the rating models (selection included) < 10 s.
* Amazon Musical Instruments 5-core: MSE mean 0.800, BaselineOnly 0.755, tuned SVD 0.754.
  Target: latent never worse than bias-only (and by how much it beats it).

    .venv/bin/python bench/rating.py [--data-dir DIR] [--folds 5] [--seed 0] [--no-similarity] [--json out.json]

The data directory defaults to ``$CHORUS_DATA_DIR``, else ``../shared/data`` beside the repository. Machine
figures are printed with the results (the targets assume this project's 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import machine, write_json  # noqa: E402
from chorus.shared.data import load_ratings  # noqa: E402
from chorus.training.rating.train import SelectionConfig, evaluate  # noqa: E402

DATASETS = {
    "movielens-100k": {
        "path": ("movielens-100k", "u.data"),
        "anchors": {
            "Surprise SVD": {"rmse": 0.9344, "seconds": 6.2},
            "Surprise SVD++": {"rmse": 0.9187, "seconds": 86.0},
            "Surprise BaselineOnly": {"rmse": 0.9440},
        },
    },
    "amazon-musical-instruments-5core": {
        "path": ("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz"),
        "anchors": {
            "Surprise mean": {"mse": 0.800},
            "Surprise BaselineOnly": {"mse": 0.755},
            "Surprise SVD (tuned)": {"mse": 0.754},
        },
    },
}


def similarity_fit():
    """The similarity core's heuristic as an ``evaluate`` plug-in (``chorus.training.evaluate.similarity_fit``)."""
    from chorus.training.evaluate import similarity_fit as fit

    return fit


def run_dataset(
    name: str, path: Path, folds: int, seed: int, with_similarity: bool, config: SelectionConfig | None = None
) -> dict:
    """Load ``path``, run ``evaluate(protocol="kfold")`` and print the table; return the figures."""
    t0 = time.perf_counter()
    data = load_ratings(path)
    load_seconds = time.perf_counter() - t0
    print(
        f"\n== {name}: {data.n:,} ratings, {data.n_users:,} users, {data.n_items:,} items, "
        f"scale {data.scale.low:g}-{data.scale.high:g} (loaded in {load_seconds:.2f} s)"
    )
    sim = similarity_fit() if with_similarity else None
    res = evaluate(
        data.user,
        data.item,
        data.rating,
        data.n_users,
        data.n_items,
        data.scale.low,
        data.scale.high,
        protocol="kfold",
        folds=folds,
        seed=seed,
        similarity_predict=sim,
        config=config or SelectionConfig(),
    )
    print(f"{folds}-fold (shuffled, seed {seed}); metrics are means over folds; seconds are totals over folds")
    print(f"{'model':<12}{'MSE':>9}{'RMSE':>9}{'MAE':>9}{'seconds':>10}")
    for model, m in res["models"].items():
        print(f"{model:<12}{m['mse']:>9.4f}{m['rmse']:>9.4f}{m['mae']:>9.4f}{res['model_seconds'][model]:>10.2f}")
    rating_seconds = sum(res["model_seconds"][m] for m in ("mean", "bias", "latent"))
    print(
        f"rating models (mean, bias, latent incl. selection) {rating_seconds:.2f} s; whole run {res['seconds']:.2f} s"
    )
    print("per fold: test RMSE bias → latent | selected (K, λ_f, λ_b, sweeps) | validation RMSE bias → latent")
    for f, (h, v, pf) in enumerate(zip(res["hyperparameters"], res["validation_rmse"], res["per_fold"], strict=True)):
        chosen = (
            f"{h['selected']:<6} K={h['n_factors']:<3} λ_f={h['reg_factors']} λ_b={h['reg_bias']} sweeps={h['sweeps']}"
        )
        print(
            f"  fold {f}: {pf['bias']['rmse']:.4f} → {pf['latent']['rmse']:.4f} | {chosen} | "
            f"{v['bias']:.4f} → {v['latent']:.4f}"
        )
    anchors = DATASETS[name]["anchors"]
    print(
        "anchors: "
        + "; ".join(
            f"{k} " + ", ".join(f"{m.upper() if m != 'seconds' else 's'} {x:g}" for m, x in v.items())
            for k, v in anchors.items()
        )
    )
    latent, bias = res["models"]["latent"], res["models"]["bias"]
    gain = bias["mse"] - latent["mse"]
    print(
        f"latent vs bias-only: MSE {latent['mse']:.4f} vs {bias['mse']:.4f} "
        f"({'better' if gain > 0 else 'not better'} by {gain:.4f}, {100 * gain / bias['mse']:.2f}%)"
    )
    if name == "movielens-100k":
        print(
            f"target latent RMSE <= 0.905: {'MET' if latent['rmse'] <= 0.905 else 'MISSED'} "
            f"({latent['rmse']:.4f}); target rating models < 10 s: "
            f"{'MET' if rating_seconds < 10 else 'MISSED'} ({rating_seconds:.2f} s)"
        )
    else:
        print(f"target latent never worse than bias-only: {'MET' if gain >= 0 else 'MISSED'}")
    return {
        "dataset": name,
        "ratings": data.n,
        "users": data.n_users,
        "items": data.n_items,
        "load_seconds": load_seconds,
        "rating_models_seconds": rating_seconds,
        **res,
        "anchors": anchors,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = os.environ.get("CHORUS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=default_dir, help=f"folder of the datasets (default {default_dir})")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-similarity",
        action="store_true",
        help="skip the similarity heuristic (on MovieLens 100K it takes about a minute)",
    )
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    print(f"machine: {machine()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"numpy {np.__version__}; selection grid: {SelectionConfig()}")
    results = []
    for name in args.datasets:
        path = Path(args.data_dir).joinpath(*DATASETS[name]["path"])
        if not path.exists():
            print(f"\n== {name}: skipped, {path} not found (set --data-dir or CHORUS_DATA_DIR)")
            continue
        results.append(run_dataset(name, path, args.folds, args.seed, not args.no_similarity))
    write_json(args.json, {"machine": machine(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

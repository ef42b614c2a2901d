"""Review-text benchmark: three tables, each against its baseline in the same run.

1. Verified purchase (``chorus evaluate --task verified``): the course baseline (logistic regression on
   ``[1, length, rating]``) and Chorus's class-balanced TF-IDF classifier, BER on the test 10% of a seeded 80/10/10
   split, on the Amazon TSV sample and on generated data (rating-dependent text; about 90% verified, the
   unverified reviews leaning to five stars and half of them saying the product came free, see
   ``chorus.shared.data.synthetic``). Target: BER below the baseline's on both.
2. Star rating from the text (``--task text-rating``) on the Amazon 5-core file: the 100-most-common-words linear
   regression and the TF-IDF ridge. Target: MSE at least 20% below the baseline's.
3. Text-aware rating prediction on the 5-core file, 5-fold (the folds and inner validation splits of ``chorus
   evaluate --protocol kfold``): bias-only and latent as ``chorus evaluate`` selects them, then every attempt, each
   choosing its hyperparameters on the fold's validation rows and scored once on the test fold:

   * text-conditioned bias shrinkage (bias targets blended with the out-of-fold text prediction);
   * HFT-style item text factors (γ_i = the item's text profile, γ_u fitted per user);
   * both, chosen on validation (the text-aware model served before the feature prior);
   * the feature prior of the biases (:mod:`chorus.training.text.prior`: a ridge, learned out of fold, on
     the user's and the item's star distribution and what their other reviews' words say, folded into the biases):
     the text-aware model ``chorus evaluate`` reports and ``chorus train`` serves, through the same code,
     :class:`chorus.training.text.aware.TextAwareFit`;
   * the prior with item text factors on top, and the prior or none, chosen on validation (the validation rows,
     about 800, are too few to choose among variants this close);
   * text-derived user and item bias features, a linear blend learned on the validation rows;
   * not served: the prior's design plus review-time columns (the user's bias residual on the same day and within
     60 days, the item's within 180 days, the share of the user's reviews before): the time of a review is known
     before it exists, but the served models take no time;
   * for reference only, NOT eligible: the test review's own helpful votes (known only after the review exists;
     every other attempt reads training reviews only).

   Target: the text-aware model's MSE at least 1.5% below bias-only's.

    .venv/bin/python bench/text.py [--data-dir DIR] [--folds 5] [--seed 0] [--generated 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import machine, write_json  # noqa: E402
from chorus.services.rating.text.features import review_length  # noqa: E402
from chorus.shared.data import Ratings, holdout_split, kfold_split, load_ratings  # noqa: E402
from chorus.shared.data.synthetic import generate_reviews  # noqa: E402
from chorus.training.evaluate import format_text_report  # noqa: E402
from chorus.training.rating.accuracy import metrics  # noqa: E402
from chorus.training.rating.fitting import Trainset  # noqa: E402
from chorus.training.rating.train import SelectionConfig, refit, select  # noqa: E402
from chorus.training.text.aware import (  # noqa: E402
    TextAwareConfig,
    TextAwareFit,
    TextAwareGrid,
    TextFeatures,
    fit_from_features,
    text_features,
)
from chorus.training.text.fit import evaluate_text_rating, evaluate_verified  # noqa: E402
from chorus.training.text.prior import (  # noqa: E402
    DEFAULT_PRIOR,
    ReviewColumns,
    StandardRidge,
    choose_ridge,
    fit_biases,
    pair_design,
    profiles,
    stacked_rows,
)

TSV = ("amazon-customer-reviews-tsv-sample", "amazon_reviews_us_sample_761rows.tsv")
CORE5 = ("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz")
SHRINK = 5.0  # pseudo-count of the per-user and per-item text features

FACTORS = {"n_factors": (0, 8, 16), "reg_user": (10.0, 30.0, 100.0)}
GRIDS = {
    "text-conditioned bias shrinkage": TextAwareGrid(blend=(0.0, 0.2, 0.4, 0.6), n_factors=(0,), prior=(False,)),
    "HFT-style item text factors": TextAwareGrid(
        blend=(0.0,), n_factors=(0, 8, 16, 32), reg_user=(10.0, 30.0, 100.0), prior=(False,)
    ),
    "both, chosen on validation (served before)": TextAwareGrid(blend=(0.0, 0.2, 0.4), prior=(False,), **FACTORS),
    "prior + item text factors, chosen on validation": TextAwareGrid(prior=(True,), **FACTORS),
    "prior or none, chosen on validation": TextAwareGrid(prior=(False, True)),
}
SERVED = "feature prior of the biases (served)"
#: Half-widths in days of the review-time windows (user, item) of the not-served time attempt.
USER_DAYS, ITEM_DAYS = 60, 180


def table_verified(name: str, r: Ratings, seed: int) -> dict:
    res = evaluate_verified(r, seed)
    print(f"\n== task 2, verified purchase: {name} ({r.n:,} reviews, {100 * res['verified_fraction']:.1f}% verified)")
    print(format_text_report(res))
    base, text = res["models"]["baseline"]["ber"], res["models"]["text"]["ber"]
    print(f"target BER below the course baseline's: {'MET' if text < base else 'MISSED'} ({text:.4f} vs {base:.4f})")
    return res


def table_text_rating(r: Ratings, seed: int) -> dict:
    res = evaluate_text_rating(r, seed)
    print(f"\n== task 3, star rating from the text: Amazon 5-core ({r.n:,} reviews)")
    print(format_text_report(res))
    base, text = res["models"]["baseline"]["mse"], res["models"]["text"]["mse"]
    gain = 100 * (base - text) / base
    print(
        f"target MSE at least 20% below the 100-words baseline: {'MET' if gain >= 20 else 'MISSED'} ({gain:.1f}% below)"
    )
    return res


def bias_features(data: Trainset, sentiment: np.ndarray, log_length: np.ndarray, users, items) -> np.ndarray:
    """Per pair, from training reviews only: the user's and the item's shrunk mean (ŕ − r), the item's shrunk mean
    ŕ − mean ŕ, and the user's and item's mean review length (log characters) − the mean: float64 (m, 5)."""
    nu, ni = data.n_users, data.n_items
    cu = np.bincount(data.user, minlength=nu) + SHRINK
    ci = np.bincount(data.item, minlength=ni) + SHRINK
    gap = sentiment - data.rating
    centred = sentiment - sentiment.mean()
    length = log_length - log_length.mean()
    return np.column_stack(
        [
            (np.bincount(data.user, gap, nu) / cu)[users],
            (np.bincount(data.item, gap, ni) / ci)[items],
            (np.bincount(data.item, centred, ni) / ci)[items],
            (np.bincount(data.user, length, nu) / cu)[users],
            (np.bincount(data.item, length, ni) / ci)[items],
        ]
    )


def own_votes(r: Ratings, rows: np.ndarray) -> np.ndarray:
    total = np.zeros(rows.size) if r.total_votes is None else r.total_votes[rows].astype(np.float64)
    helpful = np.zeros(rows.size) if r.helpful_votes is None else r.helpful_votes[rows].astype(np.float64)
    return np.column_stack([np.log1p(total), np.where(total > 0, helpful / np.maximum(total, 1), 0.0), total > 0])


def least_squares(x: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    x1 = np.column_stack([np.ones(len(x)), x])
    return np.linalg.solve(x1.T @ x1 + ridge * np.eye(x1.shape[1]), x1.T @ y)


def apply(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return w[0] + x @ w[1:]


def _window(group, day, value, q_group, q_day, half_width):
    """Count and sum of ``value`` over the rows of ``q_group`` whose day lies within ``half_width`` of ``q_day``."""
    key = group * 1_000_000 + day
    order = np.argsort(key, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(value[order])])
    lo = np.searchsorted(key[order], q_group * 1_000_000 + q_day - half_width, "left")
    hi = np.searchsorted(key[order], q_group * 1_000_000 + q_day + half_width, "right")
    return hi - lo, cum[hi] - cum[lo]


def time_columns(fit: Trainset, day: np.ndarray, lb: float, users, items, q_day) -> np.ndarray:
    """From the training ratings ``fit`` (their days ``day``): the user's bias residual (shrunk, +3 at zero) the
    same day and within USER_DAYS days of the query day, with the counts, the item's within ITEM_DAYS, and the
    share of the user's training reviews before the query day: float64 (m, 7)."""
    params = fit_biases(fit, lb)
    residual = fit.rating - params.scores(fit.user, fit.item)
    cols = []
    for group, q_group, half in ((fit.user, users, 0), (fit.user, users, USER_DAYS), (fit.item, items, ITEM_DAYS)):
        count, total = _window(group, day, residual, q_group, q_day, half)
        cols += [total / (count + 3.0), np.log1p(count)]
    before, _ = _window(fit.user, day, np.ones(fit.n), users, q_day - 50_000, 49_999)
    cols.append(before / np.maximum(np.bincount(fit.user, minlength=fit.n_users)[users], 1))
    return np.column_stack(cols)


def with_time(data: Trainset, reviews: ReviewColumns, day: np.ndarray, lb: float, seed: int, test) -> np.ndarray:
    """Predictions for the rows ``test`` of the prior's ridge refitted with the review-time columns added (the
    same out-of-fold parts and ridge choice as :func:`~chorus.training.text.prior.fit_prior`); ``data``,
    ``reviews`` and ``day`` are the training rows. ``test``: (users, items, days)."""
    config = DEFAULT_PRIOR
    design, target = stacked_rows(data, reviews, lb, config, seed)
    extra = np.zeros((data.n, 7))
    for rest, part in kfold_split(data.n, config.folds, seed):
        extra[part] = time_columns(data.subset(rest), day[rest], lb, data.user[part], data.item[part], day[part])
    design = np.column_stack([design, extra])
    ridge, _ = choose_ridge(design, target, config, seed)
    model = StandardRidge.fit(design, target, ridge * data.n / 10_000)
    params = fit_biases(data, lb)
    user_profile, item_profile = profiles(data, params, reviews, config, seed)
    tu, ti, td = test
    x = np.column_stack([pair_design(params, user_profile, item_profile, tu, ti), time_columns(data, day, lb, *test)])
    return np.clip(params.scores(tu, ti) + model.predict(x), data.low, data.high)


def best_on_validation(
    grid: TextAwareGrid, reg_bias: float, fit_on: Trainset, feats: TextFeatures, val
) -> TextAwareConfig:
    vu, vi, vr = val
    scored = [
        (metrics(fit_from_features(fit_on, feats, p).predict(vu, vi).rating, vr)["rmse"], k, p)
        for k, p in enumerate(grid.points(reg_bias))
    ]
    return min(scored)[2]


def table_text_aware(r: Ratings, folds: int, seed: int) -> dict:
    print(f"\n== text-aware rating prediction: Amazon 5-core, {folds}-fold (seed {seed}), MSE on each test fold")
    data = Trainset(r.user, r.item, r.rating, r.n_users, r.n_items, r.scale.low, r.scale.high)
    texts = r.text
    assert texts is not None
    log_length = np.log1p(review_length(texts))
    day = (np.asarray(r.timestamp, np.int64) // 86_400).astype(np.int64)
    config = SelectionConfig()
    config = replace(config, base=replace(config.base, seed=seed))
    per_fold: list[dict[str, float]] = []
    chosen: list[dict[str, str]] = []
    t0 = time.perf_counter()
    for f, (tr_all, te) in enumerate(kfold_split(data.n, folds, seed)):
        inner_tr, inner_va, _ = holdout_split(tr_all.size, seed + 1 + f, (0.9, 0.1, 0.0))
        rows, val = tr_all[inner_tr], tr_all[inner_va]
        both = np.concatenate([rows, val])
        sel = select(data, rows, val, config)
        models, _ = refit(data.subset(both), sel)
        tu, ti, tr_ = data.user[te], data.item[te], data.rating[te]
        out = {name: metrics(models[name].predict(tu, ti).rating, tr_)["mse"] for name in ("bias", "latent")}
        fold_chosen = {}
        lb = sel.bias.reg_bias
        fit_sel, fit_all = data.subset(rows), data.subset(both)
        feats_sel = text_features(fit_sel, [texts[k] for k in rows.tolist()], 32, seed, reg_bias=lb)
        feats_all = text_features(fit_all, [texts[k] for k in both.tolist()], 32, seed, reg_bias=lb)
        validation = (data.user[val], data.item[val], data.rating[val])
        for name, grid in GRIDS.items():
            point = best_on_validation(grid, lb, fit_sel, feats_sel, validation)
            out[name] = metrics(fit_from_features(fit_all, feats_all, point).predict(tu, ti).rating, tr_)["mse"]
            fold_chosen[name] = f"prior={point.prior} blend={point.blend} K={point.n_factors} λ_u={point.reg_user}"
        model, info = TextAwareFit(texts, seed=seed)(data, rows, val, lb)
        out[SERVED] = metrics(model.predict(tu, ti).rating, tr_)["mse"]
        assert feats_all.prior is not None
        fold_chosen["served"] = f"prior ridge {feats_all.prior.ridge:g} (λ_b {lb})"
        # text bias features, linear blend learned on the validation rows
        base_sel = fit_from_features(fit_sel, feats_sel, TextAwareConfig(lb))
        base_all = models["bias"]
        x_val = bias_features(fit_sel, feats_sel.sentiment, log_length[rows], data.user[val], data.item[val])
        w = least_squares(x_val, data.rating[val] - base_sel.predict(data.user[val], data.item[val]).rating)
        x_te = bias_features(fit_all, feats_all.sentiment, log_length[both], tu, ti)
        blended = np.clip(base_all.predict(tu, ti).rating + apply(w, x_te), data.low, data.high)
        out["text bias features, blend learned on validation"] = metrics(blended, tr_)["mse"]
        assert feats_all.reviews is not None
        timed = with_time(fit_all, feats_all.reviews, day[both], lb, seed, (tu, ti, day[te]))
        out["(not served) prior + review-time columns"] = metrics(timed, tr_)["mse"]
        # not eligible: the test review's own helpful votes
        w = least_squares(own_votes(r, val), data.rating[val] - base_sel.predict(data.user[val], data.item[val]).rating)
        voted = np.clip(base_all.predict(tu, ti).rating + apply(w, own_votes(r, te)), data.low, data.high)
        out["(not eligible) the test review's own helpful votes"] = metrics(voted, tr_)["mse"]
        per_fold.append(out)
        chosen.append(fold_chosen)
        print(
            f"  fold {f}: bias {out['bias']:.4f}, served text-aware {out[SERVED]:.4f}; "
            f"chosen {fold_chosen['served']} ({time.perf_counter() - t0:.0f} s so far)",
            flush=True,
        )
    names = list(per_fold[0])
    mean = {name: float(np.mean([p[name] for p in per_fold])) for name in names}
    bias = mean["bias"]
    print(f"{'model / attempt':<52}{'MSE':>9}{'vs bias-only':>14}")
    for name in names:
        print(f"{name:<52}{mean[name]:>9.4f}{100 * (mean[name] - bias) / bias:>+13.2f}%")
    served = mean[SERVED]
    gain = 100 * (bias - served) / bias
    print(f"{time.perf_counter() - t0:.0f} s in all")
    print(
        f"target text-aware MSE at least 1.5% below bias-only: {'MET' if gain >= 1.5 else 'MISSED'} ({gain:.2f}% below)"
    )
    return {"folds": folds, "seed": seed, "mse": mean, "per_fold": per_fold, "chosen": chosen}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = os.environ.get("CHORUS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=default_dir, help=f"folder of the datasets (default {default_dir})")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generated", type=int, default=20_000, help="generated reviews for task 2 (default 20,000)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out: dict = {"machine": machine()}
    tsv = Path(args.data_dir).joinpath(*TSV)
    core5 = Path(args.data_dir).joinpath(*CORE5)
    if tsv.exists():
        out["verified_tsv"] = table_verified(
            "Amazon TSV sample", load_ratings(tsv, with_text=True, progress=False), args.seed
        )
    else:
        print(f"\n== task 2 on the Amazon TSV sample: skipped, {tsv} not found")
    with tempfile.TemporaryDirectory() as tmp:
        path = generate_reviews(Path(tmp) / "generated.tsv", args.generated, seed=args.seed, progress=False)
        generated = load_ratings(path, with_text=True, progress=False)
    out["verified_generated"] = table_verified(f"generated ({args.generated:,} reviews)", generated, args.seed)
    if core5.exists():
        r = load_ratings(core5, with_text=True, progress=False)
        out["text_rating"] = table_text_rating(r, args.seed)
        out["text_aware"] = table_text_aware(r, args.folds, args.seed)
    else:
        print(f"\n== tasks 3 and the text-aware model: skipped, {core5} not found")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

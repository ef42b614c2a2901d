"""Rating data for the rating tests: small random ratings, and ratings planted from a known model."""

from __future__ import annotations

import numpy as np


def random_ratings(n_users=12, n_items=9, n=60, seed=0):
    """Distinct (user, item) pairs with ratings 1..5; one user (the last) and one item (the last) unrated."""
    rng = np.random.default_rng(seed)
    cells = rng.choice((n_users - 1) * (n_items - 1), size=n, replace=False)
    user, item = cells // (n_items - 1), cells % (n_items - 1)
    rating = rng.integers(1, 6, size=n).astype(np.float64)
    return user, item, rating, n_users, n_items


def planted(n_users=150, n_items=120, k=3, density=0.5, noise=0.1, seed=0):
    """Ratings from a known low-rank-plus-biases model, observed on a random subset with Gaussian noise."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.6, (n_users, k))
    q = rng.normal(0, 0.6, (n_items, k))
    full = 3.0 + rng.normal(0, 0.3, n_users)[:, None] + rng.normal(0, 0.3, n_items)[None, :] + p @ q.T
    cells = rng.choice(n_users * n_items, size=int(density * n_users * n_items), replace=False)
    user, item = cells // n_items, cells % n_items
    rating = full[user, item] + rng.normal(0, noise, cells.size)
    return user, item, rating, full

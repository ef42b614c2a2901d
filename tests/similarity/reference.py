"""A brute-force reference of the similarity core, written straight from the formulas in ``docs/models.md``,
and the data the tests feed both.

The reference uses Python sets and dicts only: no numpy, no sparse matrices, candidates found by scanning.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.index import SimilarityIndex

# --- the reference ------------------------------------------------------------------------------------------


class Reference:
    """The measures' definitions (``docs/models.md``), literally. ``ratings``: {(user, item): rating}."""

    def __init__(
        self, ratings: dict[tuple[int, int], float], n_users: int, n_items: int, item_rank=None, user_rank=None
    ):
        self.n_users, self.n_items = n_users, n_items
        self.by_item: dict[int, dict[int, float]] = defaultdict(dict)  # item -> {user: rating}
        self.by_user: dict[int, dict[int, float]] = defaultdict(dict)  # user -> {item: rating}
        for (u, i), r in ratings.items():
            self.by_item[i][u] = r
            self.by_user[u][i] = r
        self.item_rank = list(range(n_items)) if item_rank is None else list(item_rank)
        self.user_rank = list(range(n_users)) if user_rank is None else list(user_rank)
        self.global_mean = sum(ratings.values()) / len(ratings)

    @staticmethod
    def sim(a: dict[int, float], b: dict[int, float], measure: str) -> float:
        common = set(a) & set(b)
        if measure == "jaccard":
            union = set(a) | set(b)
            return len(common) / len(union) if union else 0.0
        if measure == "cosine":
            num = sum(a[u] * b[u] for u in common)
            den = math.sqrt(sum(r * r for r in a.values())) * math.sqrt(sum(r * r for r in b.values()))
            return num / den if den > 0 else 0.0
        if measure != "pearson":
            raise ValueError(f"the reference has no measure {measure!r}")
        mean_a = sum(a.values()) / len(a) if a else 0.0  # R̄ over ALL ratings of the row
        mean_b = sum(b.values()) / len(b) if b else 0.0
        num = sum((a[u] - mean_a) * (b[u] - mean_b) for u in common)
        ra = sum((a[u] - mean_a) ** 2 for u in common)
        rb = sum((b[u] - mean_b) ** 2 for u in common)
        if ra == 0 or rb == 0:
            return 0.0
        return num / (math.sqrt(ra) * math.sqrt(rb)) * min(len(common), 50) / 50  # significance weighting

    def _most_similar(self, rows, rank, i, k, measure, min_common):
        scored = []
        for j in range(len(rank)):
            if j == i or len(set(rows[i]) & set(rows[j])) < min_common:
                continue
            scored.append((round(self.sim(rows[i], rows[j], measure), 10), j))
        scored.sort(key=lambda t: (-t[0], rank[t[1]]))
        return [j for _, j in scored[:k]], [s for s, _ in scored[:k]]

    def similar_items(self, i, k, measure, min_common=1):
        return self._most_similar(self.by_item, self.item_rank, i, k, measure, min_common)

    def similar_users(self, u, k, measure, min_common=1):
        return self._most_similar(self.by_user, self.user_rank, u, k, measure, min_common)

    def recommend(self, u, k, measure, threshold=4.0):
        mine = self.by_user[u]
        liked = [i for i, r in mine.items() if r >= threshold] or list(mine)
        out = []
        for j in range(self.n_items):
            if j in mine:
                continue
            sims = [
                (self.sim(self.by_item[i], self.by_item[j], measure), i)
                for i in liked
                if set(self.by_item[i]) & set(self.by_item[j])
            ]
            if not sims:
                continue
            total = sum(s for s, _ in sims)
            because = min(sims, key=lambda t: (-round(t[0], 10), self.item_rank[t[1]]))[1]
            out.append((round(total, 10), j, because))
        out.sort(key=lambda t: (-t[0], self.item_rank[t[1]]))
        return out[:k]

    def recommend_table(self, u, k, measure, K, threshold=4.0):
        """The same sums, but ``sim(i, j)`` counts only when ``j`` is among the ``K`` most similar items of ``i``."""
        mine = self.by_user[u]
        liked = [i for i, r in mine.items() if r >= threshold] or list(mine)
        sims: dict[int, list[tuple[float, int]]] = {}
        for i in liked:
            for j, s in zip(*self.similar_items(i, K, measure), strict=True):
                if j not in mine:
                    sims.setdefault(j, []).append((s, i))
        out = []
        for j, pairs in sims.items():
            because = min(pairs, key=lambda t: (-t[0], self.item_rank[t[1]]))[1]
            out.append((round(sum(s for s, _ in pairs), 10), j, because))
        out.sort(key=lambda t: (-t[0], self.item_rank[t[1]]))
        return out[:k]

    def predict(self, u, i, measure):
        if u < 0 or i < 0:
            return self.global_mean, True
        num = den = 0.0
        for j, r in self.by_user[u].items():
            if j == i:
                continue
            s = self.sim(self.by_item[i], self.by_item[j], measure)
            num += r * s
            den += s
        if den == 0:
            return self.global_mean, True
        return num / den, False


def make_index(
    ratings: Mapping[tuple[int, int], float], n_users: int, n_items: int, item_rank=None, user_rank=None, **cfg
) -> SimilarityIndex:
    keys = sorted(ratings)
    return SimilarityIndex.from_arrays(
        np.array([u for u, _ in keys], dtype=np.int32),
        np.array([i for _, i in keys], dtype=np.int32),
        np.array([ratings[p] for p in keys], dtype=np.float32),
        n_users,
        n_items,
        item_rank=item_rank,
        user_rank=user_rank,
        config=SimilarityConfig(**cfg) if cfg else None,
    )


def assert_same_ranking(got, want, what=""):
    ids, scores = got
    want_ids, want_scores = want
    assert ids.tolist() == want_ids, what
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-9, err_msg=what)


# --- random data --------------------------------------------------------------------------------------------

# A few rating values make ties (equal Jaccard, equal cosine, Pearson ±1 and 0) frequent.
RATING_VALUES = [1.0, 2.0, 3.0, 4.0, 5.0, 4.5]


@st.composite
def datasets(draw, max_users: int = 7, max_items: int = 7):
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    pairs = draw(
        st.sets(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), min_size=1, max_size=n_users * n_items
        )
    )
    ratings = {p: draw(st.sampled_from(RATING_VALUES)) for p in sorted(pairs)}
    item_rank = draw(st.permutations(range(n_items)))
    user_rank = draw(st.permutations(range(n_users)))
    return ratings, n_users, n_items, list(item_rank), list(user_rank)


PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_ratings(seed: int, n_users: int = 60, n_items: int = 40, n: int = 500):
    """Random ratings as columns: (user int32 (n,), item int32 (n,), rating float32 (n,), n_users, n_items)."""
    rng = np.random.default_rng(seed)
    # long-tailed, like real data: a few popular items and heavy users
    keys = np.unique(rng.zipf(1.6, 4 * n) % n_users * n_items + rng.zipf(1.4, 4 * n) % n_items)[:n]
    return (
        (keys // n_items).astype(np.int32),
        (keys % n_items).astype(np.int32),
        rng.integers(1, 6, keys.size).astype(np.float32),
        n_users,
        n_items,
    )


# --- hand-computed cases ------------------------------------------------------------------------------------

# A made-up example small enough to compute by hand: users a..e are 0..4; U1 = {a, b, c}, U2 = {b, c, d},
# U3 = {a, b, c, d}, U4 = {e}, and item 5 rated 4 by b and c.
HAND = {
    (0, 0): 5.0,
    (1, 0): 3.0,
    (2, 0): 4.0,  # U1: a=5 b=3 c=4, mean 4
    (1, 1): 2.0,
    (2, 1): 4.0,
    (3, 1): 5.0,  # U2: b=2 c=4 d=5, mean 11/3
    (0, 2): 1.0,
    (1, 2): 2.0,
    (2, 2): 3.0,
    (3, 2): 4.0,  # U3: a..d = 1..4, mean 2.5
    (4, 3): 5.0,  # U4: e=5
    (1, 4): 4.0,
    (2, 4): 4.0,  # U5: b=4 c=4, mean 4 (every deviation 0)
}

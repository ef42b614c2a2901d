"""Numerical core of the similarity service: Jaccard, cosine and Pearson over inverted indexes.

Definitions (issue 3; item-item shown, user-user swaps the roles). ``U_i`` is the set of users who rated item
``i``, ``R_ui`` the rating, ``R̄_i`` the mean of *all* ratings of ``i``:

* Jaccard(i, j) = |U_i ∩ U_j| / |U_i ∪ U_j|
* Cosine(i, j)  = Σ_u R_ui R_uj / (√Σ_u R_ui² · √Σ_u R_uj²) over full vectors (missing ratings are 0)
* Pearson(i, j) = Σ_{u∈U_i∩U_j} (R_ui − R̄_i)(R_uj − R̄_j)
                  / (√Σ_{u∈U_i∩U_j} (R_ui − R̄_i)² · √Σ_{u∈U_i∩U_j} (R_uj − R̄_j)²), and 0 where a root is 0.

Candidates for "most similar to i" are the items sharing at least ``min_common`` users with ``i``, never ``i``
itself. They come from the inverted indexes: the row of ``i`` in the item×user matrix times the user×item
matrix (a sparse product touches only the users of ``i`` and their items, never the whole catalogue).

Ranking: the score rounded to :data:`DECIMALS` places, descending, then the raw id ascending. The core works on
dense indices; ``item_rank[i]`` / ``user_rank[u]`` give each index's position in sorted raw-id order. When the
vocabulary is sorted (``chorus.shared.data`` sorts it) index order *is* raw-id order and the ranks default to
``arange``. Returned scores are the rounded values (``np.round(score, 10)``), so that a table lookup and an
online query give bit-identical answers.

How the sums are formed: for a block of rows ``R`` the core uses scipy's CSR product: ``C = B[R] Bᵀ``
(common counts; B is the 0/1 pattern), ``X[R] Xᵀ`` (cosine numerators), ``Z[R] Zᵀ`` (Pearson numerator;
``Z`` holds ``R_ui − R̄_i`` on the pattern) and, for the two Pearson roots over the common users, the complex
products ``(Z² + i)[R] Bᵀ`` and ``B[R] (Z² + i)ᵀ`` whose imaginary part is ``C`` (so no entry is dropped).
scipy drops entries whose sum is exactly 0; :func:`_aligned` puts such products back on ``C``'s entries.
Each entry of a sparse product depends only on its own row, summed over the common users in ascending order,
so a one-row query, a many-row table build and the pairwise path (:meth:`_Side.pair_scores`) produce the same
floating-point numbers (the tests check this bit for bit).

Nothing here imports FastAPI or pydantic; errors are :mod:`chorus.shared.errors` classes so a service maps them to
HTTP statuses without translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from chorus.shared.errors import ArtifactError, InvalidInput, NotFound

Measure = Literal["jaccard", "cosine", "pearson"]
MEASURES: tuple[str, ...] = ("jaccard", "cosine", "pearson")

#: Ranking precision: scores are rounded to this many decimal places before comparison.
DECIMALS = 10
_SCALE = 10.0**DECIMALS
_Q_MAX = 10**DECIMALS  # |score| <= 1, so the rounded score times 10**10 lies in [-_Q_MAX, _Q_MAX]
_Q_BITS = (2 * _Q_MAX).bit_length()  # 35 bits hold (_Q_MAX - q) in [0, 2 * _Q_MAX]
_COARSE_SHIFT = 24  # coarse score buckets of 2**24 / 10**10 ≈ 0.0017 for the per-row top-K prefilter

#: Format of the arrays written by :meth:`SimilarityIndex.to_arrays`; bump on incompatible change.
FORMAT = 1


@dataclass(frozen=True)
class SimilarityConfig:
    """Hyperparameters of the similarity component, with their defaults in one place.

    Attributes
    ----------
    table_k : int
        Neighbours kept per item in the precomputed table (K). Queries with ``k <= table_k`` and
        ``min_common == 1`` read the table.
    like_threshold : float
        A user "liked" an item when they rated it at least this (the course's 4 stars).
    recommend_measure : str
        Measure summed by :meth:`SimilarityIndex.recommend`. Cosine: its sum over the liked items factorises
        (Σ_i sim(i, j) = q·R_j / ‖R_j‖ with q = Σ_i R_i / ‖R_i‖), so the exact scores take one sparse product
        however many items a user liked (milliseconds for a user with thousands of reviews, where the exact
        Jaccard or Pearson sum needs a row of the similarity matrix per liked item: seconds); it stays in
        [0, 1] per term for positive ratings, so anti-correlated items cannot pull a sum down as Pearson's
        can.
    predict_measure : str
        ``sim`` in the rating heuristic of :meth:`SimilarityIndex.predict`. Jaccard, as in the course's
        ``predictRating``: non-negative weights keep the prediction a weighted mean of the user's own ratings,
        so it stays on the rating scale (with Pearson the denominator can approach 0 and the estimate explode).
    block_rows : int
        At most this many item rows per block of the table build.
    block_nnz : int
        Work budget of one block: the sum over its rows of ``Σ_{u∈U_i} |I_u|`` (an upper bound on the number of
        candidate pairs the block produces); bounds the build's memory.
    pair_chunk : int
        Entries expanded at once by the pairwise similarity used for predictions.
    """

    table_k: int = 50
    like_threshold: float = 4.0
    recommend_measure: str = "cosine"
    predict_measure: str = "jaccard"
    block_rows: int = 2048
    block_nnz: int = 4_000_000
    pair_chunk: int = 2_000_000

    def __post_init__(self) -> None:
        for name in ("recommend_measure", "predict_measure"):
            check_measure(getattr(self, name))
        if self.table_k < 1 or self.block_rows < 1 or self.block_nnz < 1 or self.pair_chunk < 1:
            raise InvalidInput("table_k, block_rows, block_nnz and pair_chunk must be at least 1")


class Recommendations(NamedTuple):
    """Result of :meth:`SimilarityIndex.recommend`: int64 ``items``, float64 ``scores`` (rounded) and int64
    ``because`` (the liked item that contributed most to each score), all of shape (n,)."""

    items: np.ndarray
    scores: np.ndarray
    because: np.ndarray


class Predictions(NamedTuple):
    """Result of :meth:`SimilarityIndex.predict`: float64 ``rating`` and bool ``impossible`` (True where the
    global mean was used: unknown user or item, or a zero denominator), both of shape (n,)."""

    rating: np.ndarray
    impossible: np.ndarray


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise InvalidInput(f"unknown measure {measure!r}: expected one of {', '.join(MEASURES)}")
    return measure


def id_rank(ids: np.ndarray) -> np.ndarray:
    """Each index's position in sorted raw-id order. ``ids``: str (n,) -> int64 (n,)."""
    ids = np.asarray(ids)
    rank = np.empty(ids.shape[0], dtype=np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(ids.shape[0])
    return rank


# --- ranking keys ------------------------------------------------------------------------------------------


def _rank_bits(n: int) -> int:
    return max(1, int(n - 1).bit_length())


def _quantised(score: np.ndarray) -> np.ndarray:
    """``_Q_MAX − round(score · 10**10)`` as int64 in [0, 2·_Q_MAX]: smaller is better."""
    q = np.rint(np.clip(score, -1.0, 1.0) * _SCALE)
    return (_Q_MAX - q).astype(np.int64)


def _keys(score: np.ndarray, rank_of_col: np.ndarray, rank_bits: int) -> np.ndarray:
    """One int64 per candidate ordering by (rounded score desc, raw id asc); all distinct within a row."""
    return (_quantised(score) << rank_bits) | rank_of_col


def _decode(keys: np.ndarray, index_of_rank: np.ndarray, rank_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`_keys`: (int64 indices, float64 rounded scores)."""
    idx = index_of_rank[keys & ((1 << rank_bits) - 1)].astype(np.int64)
    score = (_Q_MAX - (keys >> rank_bits)).astype(np.float64) / _SCALE
    return idx, score


def _top_keys(keys: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest keys, sorted (keys are distinct, so this is exact)."""
    if keys.shape[0] > k:
        keys = np.partition(keys, k - 1)[:k]
    return np.sort(keys)


def _lex_order(primary: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Order by rounded ``primary`` descending then ``rank`` ascending (for unbounded scores such as sums)."""
    return np.lexsort((rank, -np.rint(primary * _SCALE)))


# --- sparse helpers ----------------------------------------------------------------------------------------


def _gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of ``rows`` in a CSR layout, and the indptr of the gathered sub-matrix."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    bptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lens, out=bptr[1:])
    pos = np.repeat(starts - bptr[:-1], lens) + np.arange(bptr[-1], dtype=np.int64)
    return bptr, pos


_SLOT_BUDGET = 1 << 22  # slots of the dense (row, column) -> position map used by _aligned (16-32 MB)


def _aligned(pattern: sp.csr_array, other: sp.csr_array) -> np.ndarray:
    """Values of ``other`` on ``pattern``'s entries (0 where ``other`` has none). float64 (pattern.nnz,).

    Both are products of matrices with the same sparsity patterns, so ``other``'s entries are ``pattern``'s
    minus those whose sum is exactly 0 (scipy drops them). scipy emits each row's columns in an order fixed by
    the patterns alone, so rows with as many entries as ``pattern`` are copied as they are (checked). The
    other rows go through a dense (row, column) -> position map, a few rows at a time: each row's part of the
    map is small enough to stay in cache.
    """
    if other.nnz == pattern.nnz and np.array_equal(other.indices, pattern.indices):
        return other.data
    out = np.zeros(pattern.nnz, dtype=np.float64)
    if other.nnz == 0:
        return out
    p_len, o_len = np.diff(pattern.indptr), np.diff(other.indptr)
    full = p_len == o_len
    p_full, o_full = np.repeat(full, p_len), np.repeat(full, o_len)
    if np.array_equal(pattern.indices[p_full], other.indices[o_full]):
        out[p_full] = other.data[o_full]
        rest = ~full & (o_len > 0)
    else:  # a scipy that emits columns in another order: map every row
        rest = o_len > 0
    rows = np.flatnonzero(rest)
    if rows.shape[0] == 0:
        return out
    p_sel, o_sel = np.repeat(rest, p_len), np.repeat(rest, o_len)
    p_pos = np.flatnonzero(p_sel)
    p_col, o_col, o_val = pattern.indices[p_sel], other.indices[o_sel], other.data[o_sel]
    p_cnt, o_cnt = p_len[rows], o_len[rows]
    p_row = np.repeat(np.arange(rows.shape[0], dtype=np.int64), p_cnt)
    o_row = np.repeat(np.arange(rows.shape[0], dtype=np.int64), o_cnt)
    p_end = np.concatenate([[0], np.cumsum(p_cnt)])
    o_end = np.concatenate([[0], np.cumsum(o_cnt)])
    n_cols = int(pattern.shape[1])
    group = max(1, _SLOT_BUDGET // max(n_cols, 1))
    slot = np.empty(min(group, rows.shape[0]) * n_cols, dtype=np.int32 if pattern.nnz < 2**31 else np.int64)
    for g0 in range(0, rows.shape[0], group):
        g1 = min(g0 + group, rows.shape[0])
        a, b = p_end[g0], p_end[g1]
        slot[(p_row[a:b] - g0) * n_cols + p_col[a:b]] = p_pos[a:b]
        a, b = o_end[g0], o_end[g1]
        out[slot[(o_row[a:b] - g0) * n_cols + o_col[a:b]]] = o_val[a:b]
    return out


def _chunks(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split consecutive items with ``lengths`` into runs whose total stays within ``budget`` (a run holds at
    least one item)."""
    n = lengths.shape[0]
    if n == 0:
        return []
    ends = np.cumsum(lengths, dtype=np.int64)
    out, start, base = [], 0, 0
    while start < n:
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = max(stop, start + 1)
        out.append((start, stop))
        base = int(ends[stop - 1])
        start = stop
    return out


def _reduce_contributions(
    col: np.ndarray, value: np.ndarray, best_q: np.ndarray, src: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group contributions by ``col``: (unique cols, summed ``value``, best rounded score, its source).

    The best source has the largest ``best_q`` (a score times 10**10, rounded), ties going to the smallest
    ``rank[src]``. All arrays (m,); sums accumulate in input order.
    """
    uniq, group = np.unique(col, return_inverse=True)
    total = np.bincount(group, weights=value, minlength=uniq.shape[0])
    order = np.lexsort((rank[src], -best_q, group))
    firsts = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    return uniq, total, best_q[firsts], src[firsts]


class _Candidates(NamedTuple):
    row: np.ndarray  # int64 (m,): position of the query row in the block
    col: np.ndarray  # int32/int64 (m,): candidate index
    common: np.ndarray  # float64 (m,): number of common users (items)
    scores: dict  # measure -> float64 (m,) raw score


class _Side:
    """One orientation of the ratings: rows (items, or users) against columns (users, or items).

    ``indptr/indices/ratings`` is the rows×columns CSR layout, ``t_*`` the columns×rows layout of the same
    ratings. Statistics are per row: number of ratings, mean rating, Euclidean norm of the rating vector.
    """

    def __init__(
        self,
        name: str,
        indptr,
        indices,
        ratings,
        t_indptr,
        t_indices,
        t_ratings,
        count: np.ndarray,
        mean: np.ndarray,
        norm: np.ndarray,
        rank: np.ndarray,
    ) -> None:
        self.name = name
        self.n_rows = int(indptr.shape[0]) - 1
        self.n_cols = int(t_indptr.shape[0]) - 1
        nnz = int(indices.shape[0])
        idx = np.int32 if max(nnz, self.n_rows, self.n_cols) < 2**31 - 1 else np.int64
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self._indptr_idx = self.indptr.astype(idx)
        self.indices = np.asarray(indices, dtype=idx)
        t_indptr = np.asarray(t_indptr, dtype=idx)
        t_indices = np.asarray(t_indices, dtype=idx)
        self.count = np.asarray(count, dtype=np.float64)
        self.count_int = np.diff(self.indptr)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.norm = np.asarray(norm, dtype=np.float64)
        self.rank = np.asarray(rank, dtype=np.int64)
        self.index_of_rank = np.empty_like(self.rank)
        self.index_of_rank[self.rank] = np.arange(self.n_rows)
        self.rank_bits = _rank_bits(self.n_rows)
        ratings = np.asarray(ratings, dtype=np.float64)
        t_ratings = np.asarray(t_ratings, dtype=np.float64)
        # The same (row, col) value is computed from the same operands in both layouts, so the products
        # below see identical numbers whichever side they come from.
        z = ratings - self.mean[np.repeat(np.arange(self.n_rows), self.count_int)]
        zt = t_ratings - self.mean[t_indices]
        ones = np.ones(nnz)
        # Complex values carry two sums through one product with the exact pattern of the common counts:
        # (z² + i)[R] · (1 + 0i)ᵀ = Σ z_r² + i·|common|, and 1[R] · (z² + i)ᵀ = Σ z_c² + i·|common|. The
        # imaginary part is ≥ 1 on every candidate, so scipy never drops an entry, and multiplying by exact
        # 0s and 1s leaves the real parts bit-identical to the real products.
        self.left = {"b": ones, "x": ratings, "z": z, "z2": z * z}
        shape = (self.n_cols, self.n_rows)
        zt2 = zt * zt
        self.right = {
            kind: sp.csr_array((data, t_indices, t_indptr), shape=shape)
            for kind, data in (("b", ones), ("x", t_ratings), ("z", zt), ("bc", ones + 0j), ("z2i", zt2 + 1j))
        }
        self._keys_sorted: np.ndarray | None = None
        self._work: np.ndarray | None = None

    # -- checks -------------------------------------------------------------------------------------------

    def check_row(self, i: int) -> int:
        if not (0 <= int(i) < self.n_rows):
            raise NotFound(f"unknown {self.name} index {int(i)} (there are {self.n_rows} {self.name}s)")
        return int(i)

    # -- block products -----------------------------------------------------------------------------------

    def _left(self, kind: str, bptr: np.ndarray, take) -> sp.csr_array:
        """Rows of the rows×columns matrix of ``kind``; the complex kinds are formed for the block only."""
        if kind == "z2i":
            data = self.left["z2"][take] + 1j
        elif kind == "bc":
            data = self.left["b"][take] + 0j
        else:
            data = self.left[kind][take]
        return sp.csr_array(
            (data, self.indices[take], bptr.astype(self.indices.dtype)), shape=(bptr.shape[0] - 1, self.n_cols)
        )

    def candidates(
        self, rows: np.ndarray, measures, min_common: int = 1, exclude_self: bool = True, contiguous: bool = False
    ) -> _Candidates:
        """Every (row, candidate) pair sharing at least ``min_common`` columns, with raw scores.

        ``rows``: int64 (r,) row indices (ascending and consecutive when ``contiguous``).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if contiguous and rows.shape[0]:
            a, b = int(self.indptr[rows[0]]), int(self.indptr[rows[-1] + 1])
            bptr, take = self.indptr[rows[0] : rows[-1] + 2] - a, slice(a, b)
        else:
            bptr, take = _gather(self.indptr, rows)
        pearson = "pearson" in measures
        if pearson:
            common = self._left("z2i", bptr, take) @ self.right["bc"]  # Σ z_row² + i·|common|
            roots = self._left("bc", bptr, take) @ self.right["z2i"]  # Σ z_col² + i·|common|
            if not np.array_equal(roots.indices, common.indices):  # same pattern by construction
                raise AssertionError("scipy returned different patterns for equal-pattern products")
            cnt_all = common.data.imag
        else:
            common = self._left("b", bptr, take) @ self.right["b"]
            cnt_all = common.data
        lens = np.diff(common.indptr)
        row = np.repeat(np.arange(rows.shape[0], dtype=np.int64), lens)
        keep = None
        if min_common > 1:
            keep = cnt_all >= min_common
        if exclude_self:
            not_self = common.indices != np.repeat(rows, lens)
            keep = not_self if keep is None else keep & not_self

        def sel(values: np.ndarray) -> np.ndarray:
            return values if keep is None else values[keep]

        col, cnt, row = sel(common.indices), sel(cnt_all), sel(row)
        qrow = rows[row]
        scores = {}
        for measure in measures:
            if measure == "jaccard":
                scores[measure] = cnt / (self.count[qrow] + self.count[col] - cnt)
            elif measure == "cosine":
                num = sel(_aligned(common, self._left("x", bptr, take) @ self.right["x"]))
                den = self.norm[qrow] * self.norm[col]
                scores[measure] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
            elif measure == "pearson":
                num = sel(_aligned(common, self._left("z", bptr, take) @ self.right["z"]))
                a1, a2 = sel(common.data.real), sel(roots.data.real)
                den = np.sqrt(a1) * np.sqrt(a2)
                scores[measure] = np.divide(num, den, out=np.zeros_like(num), where=(a1 > 0) & (a2 > 0))
            else:
                check_measure(measure)
        return _Candidates(row, col, cnt, scores)

    # -- queries ------------------------------------------------------------------------------------------

    def most_similar(self, i: int, k: int, measure: str, min_common: int) -> tuple[np.ndarray, np.ndarray]:
        i = self.check_row(i)
        cand = self.candidates(np.array([i]), (measure,), min_common, contiguous=True)
        keys = _top_keys(_keys(cand.scores[measure], self.rank[cand.col], self.rank_bits), k)
        return _decode(keys, self.index_of_rank, self.rank_bits)

    def top_k_block(self, start: int, stop: int, k: int, measures) -> dict[str, tuple]:
        """Top ``k`` neighbours of rows ``start..stop-1`` for each measure.

        Returns ``{measure: (neighbours int32 (r, k) padded with -1, rounded scores float64 (r, k) padded with
        0, number of neighbours int32 (r,))}``.
        """
        rows = np.arange(start, stop, dtype=np.int64)
        r = rows.shape[0]
        cand = self.candidates(rows, measures, contiguous=True)
        n_nb = np.minimum(np.bincount(cand.row, minlength=r), k).astype(np.int32)
        out = {}
        for measure in measures:
            q = _quantised(cand.scores[measure])
            row = cand.row
            # Prefilter: per row, keep the coarse score buckets that hold its best k (exact: whole buckets).
            nb = (2 * _Q_MAX >> _COARSE_SHIFT) + 1
            coarse = q >> _COARSE_SHIFT
            hist = np.bincount(row * nb + coarse, minlength=r * nb).reshape(r, nb)
            last = (np.cumsum(hist, axis=1) < k).sum(axis=1)
            keep = coarse <= last[row]
            row, q = row[keep], q[keep]
            key = (q << self.rank_bits) | self.rank[cand.col[keep]]
            row_shift = _Q_BITS + self.rank_bits
            if (r - 1).bit_length() + row_shift <= 63:
                packed = np.sort((row << row_shift) | key)
                row, key = packed >> row_shift, packed & ((1 << row_shift) - 1)
            else:
                order = np.lexsort((key, row))
                row, key = row[order], key[order]
            first = np.searchsorted(row, np.arange(r))
            pos = np.arange(row.shape[0]) - first[row]
            top = pos < k
            idx, score = _decode(key[top], self.index_of_rank, self.rank_bits)
            nbrs = np.full((r, k), -1, dtype=np.int32)
            scores = np.zeros((r, k), dtype=np.float64)
            nbrs[row[top], pos[top]] = idx
            scores[row[top], pos[top]] = score
            out[measure] = (nbrs, scores, n_nb)
        return out

    def row_work(self) -> np.ndarray:
        """:meth:`work`, computed once."""
        if self._work is None:
            self._work = self.work()
        return self._work

    def work(self) -> np.ndarray:
        """Per row, Σ over its columns of their number of entries: an upper bound on its candidate count.
        int64 (n_rows,)."""
        col_len = np.diff(self.right["b"].indptr).astype(np.int64)
        per_entry = col_len[self.indices]
        csum = np.concatenate([[0], np.cumsum(per_entry, dtype=np.int64)])
        return csum[self.indptr[1:]] - csum[self.indptr[:-1]]

    # -- arbitrary pairs ----------------------------------------------------------------------------------

    def _sorted_keys(self) -> np.ndarray:
        """row * n_cols + col for every entry; sorted, because the CSR rows are and their columns are."""
        if self._keys_sorted is None:
            rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), self.count_int)
            self._keys_sorted = rows * self.n_cols + self.indices
        return self._keys_sorted

    def pair_scores(self, a: np.ndarray, b: np.ndarray, measure: str, chunk: int) -> np.ndarray:
        """sim(a[p], b[p]) for every p. ``a, b``: int64 (n,) valid row indices -> float64 (n,).

        The shorter of the two rows is walked and each of its columns looked up in the other row (binary
        search in the sorted entry keys), so the cost is Σ_p min(|a_p|, |b_p|) · log(nnz).
        """
        check_measure(measure)
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        n = a.shape[0]
        out = np.zeros(n, dtype=np.float64)
        if n == 0:
            return out
        keys = self._sorted_keys()
        swap = self.count_int[a] > self.count_int[b]
        s, t = np.where(swap, b, a), np.where(swap, a, b)
        lens = self.count_int[s]
        n_cols = np.int64(self.n_cols)
        for lo, hi in _chunks(lens, chunk):
            bptr, pos = _gather(self.indptr, s[lo:hi])
            pair = np.repeat(np.arange(hi - lo), np.diff(bptr))
            target = t[lo:hi][pair] * n_cols + self.indices[pos]
            at = np.minimum(np.searchsorted(keys, target), keys.shape[0] - 1)
            hit = keys[at] == target
            pair, pos_s, pos_t = pair[hit], pos[hit], at[hit]
            m = hi - lo
            cnt = np.bincount(pair, minlength=m).astype(np.float64)
            aa, bb = a[lo:hi], b[lo:hi]
            if measure == "jaccard":
                den = self.count[aa] + self.count[bb] - cnt
                out[lo:hi] = np.divide(cnt, den, out=np.zeros(m), where=cnt > 0)
            elif measure == "cosine":
                x = self.left["x"]
                num = np.bincount(pair, weights=x[pos_s] * x[pos_t], minlength=m)
                den = self.norm[aa] * self.norm[bb]
                out[lo:hi] = np.divide(num, den, out=np.zeros(m), where=den > 0)
            else:
                z, z2 = self.left["z"], self.left["z2"]
                num = np.bincount(pair, weights=z[pos_s] * z[pos_t], minlength=m)
                ss = np.bincount(pair, weights=z2[pos_s], minlength=m)
                tt = np.bincount(pair, weights=z2[pos_t], minlength=m)
                sw = swap[lo:hi]
                a1, a2 = np.where(sw, tt, ss), np.where(sw, ss, tt)
                den = np.sqrt(a1) * np.sqrt(a2)
                out[lo:hi] = np.divide(num, den, out=np.zeros(m), where=(a1 > 0) & (a2 > 0))
        return out


# --- the index ---------------------------------------------------------------------------------------------

_CORE_ARRAYS = (
    "shape",
    "item_indptr",
    "item_users",
    "item_ratings",
    "user_indptr",
    "user_items",
    "user_ratings",
    "item_rank",
    "user_rank",
    "item_count",
    "item_mean",
    "item_norm",
    "user_count",
    "user_mean",
    "user_norm",
)


def _csr_layout(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int):
    order = np.lexsort((cols, rows))
    counts = np.bincount(rows, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, cols[order].astype(np.int32), values[order].astype(np.float64), rows[order]


def _row_stats(indptr: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    count = np.diff(indptr)
    row = np.repeat(np.arange(count.shape[0]), count)
    total = np.bincount(row, weights=values, minlength=count.shape[0])
    squares = np.bincount(row, weights=values * values, minlength=count.shape[0])
    mean = np.divide(total, count, out=np.zeros(count.shape[0]), where=count > 0)
    return count.astype(np.int64), mean, np.sqrt(squares)


def table_array_names(measures=MEASURES) -> list[str]:
    """Names of the neighbour-table arrays for ``measures``."""
    return ["n_neighbors"] + [f"{kind}_{m}" for m in measures for kind in ("neighbors", "scores")]


class SimilarityIndex:
    """Ratings held as item×user and user×item CSR matrices, with per-row statistics and an optional
    precomputed item neighbour table.

    Build with :meth:`from_arrays` (from ratings) or :meth:`from_saved` (from :meth:`to_arrays` output, e.g.
    memory-mapped read-only ``.npy`` files). Every query is vectorised: sparse products and numpy, no Python
    loop over items or ratings. Indices are dense (0..n-1); map raw ids before calling.

    Attributes
    ----------
    n_users, n_items : int
    item_count, user_count : int64 (n_items,), (n_users,)
        Number of ratings.
    item_mean, user_mean : float64
        Mean rating (0 for a row without ratings).
    item_norm, user_norm : float64
        √Σ R², the Euclidean norm used by cosine.
    item_rank, user_rank : int64
        Position of each index in sorted raw-id order (the ranking tie-break).
    global_mean : float
        Mean of all ratings: the fallback prediction.
    table_k : int
        Neighbours per item in the table (0 when there is no table).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], config: SimilarityConfig | None = None) -> None:
        """Use :meth:`from_arrays` or :meth:`from_saved`."""
        self.config = config or SimilarityConfig()
        a = arrays
        self.n_users, self.n_items = (int(v) for v in a["shape"])
        self._arrays = {name: a[name] for name in _CORE_ARRAYS}
        self.item_count, self.item_mean, self.item_norm = (
            np.asarray(a[f"item_{s}"]) for s in ("count", "mean", "norm")
        )
        self.user_count, self.user_mean, self.user_norm = (
            np.asarray(a[f"user_{s}"]) for s in ("count", "mean", "norm")
        )
        self.item_rank = np.asarray(a["item_rank"], dtype=np.int64)
        self.user_rank = np.asarray(a["user_rank"], dtype=np.int64)
        self._items = _Side(
            "item",
            a["item_indptr"],
            a["item_users"],
            a["item_ratings"],
            a["user_indptr"],
            a["user_items"],
            a["user_ratings"],
            self.item_count,
            self.item_mean,
            self.item_norm,
            self.item_rank,
        )
        self._users = _Side(
            "user",
            a["user_indptr"],
            a["user_items"],
            a["user_ratings"],
            a["item_indptr"],
            a["item_users"],
            a["item_ratings"],
            self.user_count,
            self.user_mean,
            self.user_norm,
            self.user_rank,
        )
        nnz = int(self._items.indices.shape[0])
        self.global_mean = float(np.sum(self._items.left["x"]) / nnz) if nnz else 0.0
        self._table: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._n_neighbors: np.ndarray | None = None
        self.table_k = 0

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        user: np.ndarray,
        item: np.ndarray,
        rating: np.ndarray,
        n_users: int,
        n_items: int,
        *,
        item_rank: np.ndarray | None = None,
        user_rank: np.ndarray | None = None,
        config: SimilarityConfig | None = None,
    ) -> SimilarityIndex:
        """Index ratings given as columns.

        Parameters
        ----------
        user, item : int (n,)
            Dense indices in ``0..n_users-1`` / ``0..n_items-1``; each (user, item) pair at most once.
        rating : float (n,)
        n_users, n_items : int
        item_rank, user_rank : int (n_items,), (n_users,), optional
            Position of each index in sorted raw-id order. Default: index order is raw-id order (a sorted
            vocabulary, as ``chorus.shared.data`` builds it). See :func:`id_rank`.

        Raises
        ------
        InvalidInput : mismatched lengths, indices out of range, a repeated pair, or non-finite ratings.
        """
        user = np.asarray(user).astype(np.int64, copy=False)
        item = np.asarray(item).astype(np.int64, copy=False)
        rating = np.asarray(rating).astype(np.float64, copy=False)
        n = user.shape[0]
        if item.shape[0] != n or rating.shape[0] != n:
            raise InvalidInput(f"user, item and rating differ in length ({n}, {item.shape[0]}, {rating.shape[0]})")
        if n and (user.min() < 0 or user.max() >= n_users or item.min() < 0 or item.max() >= n_items):
            raise InvalidInput("user or item index out of range")
        if not np.all(np.isfinite(rating)):
            raise InvalidInput("ratings must be finite")
        i_indptr, i_users, i_ratings, i_rows = _csr_layout(item, user, rating, n_items)
        if n > 1 and np.any((i_rows[1:] == i_rows[:-1]) & (i_users[1:] == i_users[:-1])):
            raise InvalidInput("a (user, item) pair occurs more than once")
        u_indptr, u_items, u_ratings, _ = _csr_layout(user, item, rating, n_users)
        ic, im, inorm = _row_stats(i_indptr, i_ratings)
        uc, um, unorm = _row_stats(u_indptr, u_ratings)
        arrays = {
            "shape": np.array([n_users, n_items], dtype=np.int64),
            "item_indptr": i_indptr,
            "item_users": i_users,
            "item_ratings": i_ratings,
            "user_indptr": u_indptr,
            "user_items": u_items,
            "user_ratings": u_ratings,
            "item_rank": _rank_or_identity(item_rank, n_items, "item_rank"),
            "user_rank": _rank_or_identity(user_rank, n_users, "user_rank"),
            "item_count": ic,
            "item_mean": im,
            "item_norm": inorm,
            "user_count": uc,
            "user_mean": um,
            "user_norm": unorm,
        }
        return cls(arrays, config)

    @classmethod
    def from_saved(
        cls,
        arrays: Mapping[str, np.ndarray],
        config: SimilarityConfig | None = None,
    ) -> SimilarityIndex:
        """Rebuild from :meth:`to_arrays` output (arrays may be read-only memory maps; none is modified).

        Only cheap O(nnz) steps run: validation, the centred values for Pearson, the CSR wrappers. The neighbour
        table is attached when its arrays are present.

        Raises
        ------
        ArtifactError : a missing array, or arrays that do not fit together.
        """
        missing = [name for name in _CORE_ARRAYS if name not in arrays]
        if missing:
            raise ArtifactError(f"similarity arrays missing: {', '.join(missing)}")
        _validate(arrays)
        index = cls(arrays, config)
        names = [m for m in MEASURES if f"neighbors_{m}" in arrays]
        if names:
            index.attach_table({n: arrays[n] for n in table_array_names(names)})
        return index

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed by :meth:`from_saved`, as plain numeric arrays (``allow_pickle=False`` safe)."""
        out = dict(self._arrays)
        if self._table:
            out["n_neighbors"] = self._n_neighbors
            for m, (nb, sc) in self._table.items():
                out[f"neighbors_{m}"], out[f"scores_{m}"] = nb, sc
        return out

    def attach_table(self, table: Mapping[str, np.ndarray]) -> None:
        """Use a neighbour table (``n_neighbors``, ``neighbors_<m>``, ``scores_<m>``; see :func:`table_array_names`).

        Raises
        ------
        ArtifactError : shapes that do not match the index.
        """
        n_nb = np.asarray(table["n_neighbors"])
        if n_nb.shape != (self.n_items,):
            raise ArtifactError(f"n_neighbors has shape {n_nb.shape}, expected ({self.n_items},)")
        tab, k = {}, None
        for m in MEASURES:
            if f"neighbors_{m}" not in table:
                continue
            nb, sc = np.asarray(table[f"neighbors_{m}"]), np.asarray(table[f"scores_{m}"])
            if nb.ndim != 2 or nb.shape[0] != self.n_items or sc.shape != nb.shape or sc.dtype != np.float64:
                raise ArtifactError(
                    f"neighbour table for {m}: shapes {nb.shape} and {sc.shape} {sc.dtype}, "
                    f"expected ({self.n_items}, K) and float64"
                )
            if k is not None and nb.shape[1] != k:
                raise ArtifactError("neighbour tables of different K")
            k = nb.shape[1]
            tab[m] = (nb, sc)
        if not tab:
            raise ArtifactError("neighbour table without any measure")
        if n_nb.size and (n_nb.min() < 0 or n_nb.max() > k):
            raise ArtifactError("n_neighbors out of range")
        self._table, self._n_neighbors, self.table_k = tab, n_nb, int(k)

    @property
    def has_table(self) -> bool:
        return bool(self._table)

    @property
    def table_measures(self) -> tuple[str, ...]:
        return tuple(self._table)

    # -- similar items / users ----------------------------------------------------------------------------

    def similar_items(
        self, i: int, k: int = 10, measure: str = "jaccard", min_common: int = 1, *, use_table: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to item ``i``.

        Returns (int64 indices (n,), float64 scores rounded to 10 places (n,)), n ≤ k, best first; ties by raw id.
        ``use_table``: None reads the table when it can answer (``k <= table_k``, ``min_common == 1``),
        False forces the online computation, True requires the table. Both give identical answers.
        """
        check_measure(measure)
        k, min_common = _check_k(k), _check_min_common(min_common)
        can = measure in self._table and k <= self.table_k and min_common == 1
        if use_table and not can:
            raise InvalidInput(f"the neighbour table cannot answer k={k}, measure={measure!r}, min_common={min_common}")
        if can and use_table is not False:
            i = self._items.check_row(i)
            nb, sc = self._table[measure]
            n = min(k, int(self._n_neighbors[i]))
            return nb[i, :n].astype(np.int64), np.array(sc[i, :n], dtype=np.float64)
        return self._items.most_similar(i, k, measure, min_common)

    def similar_users(
        self,
        u: int,
        k: int = 10,
        measure: str = "jaccard",
        min_common: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users most similar to user ``u`` (computed online). Same conventions as
        :meth:`similar_items`."""
        check_measure(measure)
        return self._users.most_similar(u, _check_k(k), measure, _check_min_common(min_common))

    def item_similarity(self, i: np.ndarray, j: np.ndarray, measure: str = "jaccard") -> np.ndarray:
        """sim(i[p], j[p]) (raw, not rounded). ``i, j``: int (n,) valid item indices -> float64 (n,)."""
        i, j = self._valid(i, self.n_items, "item"), self._valid(j, self.n_items, "item")
        return self._items.pair_scores(i, j, measure, self.config.pair_chunk)

    def user_similarity(self, u: np.ndarray, v: np.ndarray, measure: str = "jaccard") -> np.ndarray:
        """sim(u[p], v[p]) between users (raw). int (n,) -> float64 (n,)."""
        u, v = self._valid(u, self.n_users, "user"), self._valid(v, self.n_users, "user")
        return self._users.pair_scores(u, v, measure, self.config.pair_chunk)

    def user_items(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """Items rated by user ``u`` (ascending int32 view) and the ratings (float64)."""
        u = self._users.check_row(u)
        a, b = self._users.indptr[u], self._users.indptr[u + 1]
        return self._users.indices[a:b], self._users.left["x"][a:b]

    # -- recommendations ----------------------------------------------------------------------------------

    def recommend(self, u: int, k: int = 10, measure: str | None = None) -> Recommendations:
        """Items for user ``u`` from the items they liked: score(j) = Σ_{i liked} sim(i, j) over items ``j``
        the user has not rated; liked = rated ≥ ``config.like_threshold`` (all their items if none).

        Ranked like similar items (rounded score descending, raw id ascending); ``because[n]`` is the liked item
        with the largest sim(i, j) (ties: smallest raw id). Only items sharing a user with a liked item are
        candidates (for Jaccard and cosine with positive ratings, the others score 0).

        Cost: cosine (the default) is one sparse vector × matrix product (its sum factorises); Jaccard and
        Pearson need the similarity row of every liked item, taken in chunks of ``config.block_nnz`` work, so
        memory stays bounded but a user with thousands of liked items takes seconds.
        """
        measure = check_measure(measure or self.config.recommend_measure)
        k = _check_k(k)
        items, ratings = self.user_items(u)
        liked = items[ratings >= self.config.like_threshold]
        if liked.shape[0] == 0:
            liked = items
        empty = np.zeros(0, dtype=np.int64)
        if liked.shape[0] == 0:
            return Recommendations(empty, np.zeros(0), empty)
        liked = liked.astype(np.int64)
        if measure == "cosine":
            return self._recommend_cosine(items, liked, k)
        side = self._items
        state = None
        # Liked items go through the sparse product in chunks of bounded work; each chunk is reduced to one
        # entry per candidate (sum, best contributor) and merged, so memory stays O(block_nnz + n_items).
        for lo, hi in _chunks(side.row_work()[liked], self.config.block_nnz):
            cand = side.candidates(liked[lo:hi], (measure,), exclude_self=False)
            col = cand.col.astype(np.int64)
            at = np.minimum(np.searchsorted(items, col), items.shape[0] - 1)
            fresh = items[at] != col
            if not fresh.any():
                continue
            sim = cand.scores[measure][fresh]
            part = _reduce_contributions(
                col[fresh], sim, np.rint(sim * _SCALE), liked[lo:hi][cand.row[fresh]], self.item_rank
            )
            state = (
                part
                if state is None
                else _reduce_contributions(
                    *(np.concatenate([a, b]) for a, b in zip(state, part, strict=True)), self.item_rank
                )
            )
        if state is None:
            return Recommendations(empty, np.zeros(0), empty)
        uniq, total, _, because = state
        best = _lex_order(total, self.item_rank[uniq])[:k]
        return Recommendations(uniq[best], np.round(total[best], DECIMALS), because[best])

    def _recommend_cosine(self, items: np.ndarray, liked: np.ndarray, k: int) -> Recommendations:
        """Cosine sums factorise: Σ_{i∈L} sim(i, j) = Σ_u q_u R_uj / ‖R_j‖ with q_u = Σ_{i∈L} R_ui / ‖R_i‖,
        so every score comes from one sparse vector × matrix product (cost ≤ the ratings of the users who rated
        a liked item), however many items were liked. ``because`` is then computed for the top ``k`` only."""
        side = self._items
        bptr, pos = _gather(side.indptr, liked)
        norms = side.norm[liked]
        inv_norm = np.divide(1.0, norms, out=np.zeros(liked.shape[0]), where=norms > 0)
        users, group = np.unique(side.indices[pos], return_inverse=True)
        q = np.bincount(
            group, weights=side.left["x"][pos] * np.repeat(inv_norm, np.diff(bptr)), minlength=users.shape[0]
        )
        idt = side.indices.dtype
        ptr = np.array([0, users.shape[0]], dtype=idt)
        shape = (1, side.n_cols)
        common = sp.csr_array((np.ones(users.shape[0]), users.astype(idt), ptr), shape=shape) @ side.right["b"]
        num = _aligned(common, sp.csr_array((q, users.astype(idt), ptr), shape=shape) @ side.right["x"])
        col = common.indices.astype(np.int64)
        den = side.norm[col]
        total = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        at = np.minimum(np.searchsorted(items, col), items.shape[0] - 1)
        fresh = items[at] != col
        col, total = col[fresh], total[fresh]
        best = _lex_order(total, self.item_rank[col])[:k]
        top = col[best]
        return Recommendations(top, np.round(total[best], DECIMALS), self._because_cosine(liked, top))

    def _because_cosine(self, liked: np.ndarray, top: np.ndarray) -> np.ndarray:
        """For each of ``top``, the liked item of largest cosine (ties: smallest raw id). Computed as the
        product of the liked rows with the ``top`` columns only; the sums are formed as in every other path."""
        side = self._items
        if top.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        tptr, tpos = _gather(side.indptr, top)
        idt = side.indices.dtype

        def right(kind: str) -> sp.csr_array:  # users × top
            m = sp.csr_array(
                (side.left[kind][tpos], side.indices[tpos], tptr.astype(idt)), shape=(top.shape[0], side.n_cols)
            )
            return m.T.tocsr()

        bptr, take = _gather(side.indptr, liked)
        common = side._left("b", bptr, take) @ right("b")
        num = _aligned(common, side._left("x", bptr, take) @ right("x"))
        row = np.repeat(np.arange(liked.shape[0]), np.diff(common.indptr))
        col = common.indices.astype(np.int64)
        den = side.norm[liked[row]] * side.norm[top[col]]
        sim = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        src = liked[row]
        order = np.lexsort((self.item_rank[src], -np.rint(sim * _SCALE), col))
        firsts = order[np.r_[True, col[order][1:] != col[order][:-1]]]
        because = np.empty(top.shape[0], dtype=np.int64)
        because[col[firsts]] = src[firsts]
        return because

    # -- rating prediction --------------------------------------------------------------------------------

    def predict(self, users, items, measure: str | None = None) -> Predictions:
        """The course's heuristic r(u, i) = Σ_{j∈I_u∖{i}} R_uj·sim(i, j) / Σ_{j∈I_u∖{i}} sim(i, j).

        ``users, items``: int (n,) (or scalars); -1 marks an unknown user or item. Where the user or item is
        unknown or the denominator is 0, the rating is the global mean and ``impossible`` is True. Not clipped:
        with Jaccard or cosine (non-negative weights) it is a weighted mean of the user's ratings.
        Vectorised over all pairs (chunked to bound memory).

        Raises
        ------
        NotFound : an index below -1 or beyond the last user/item.
        """
        measure = check_measure(measure or self.config.predict_measure)
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        if users.shape != items.shape or users.ndim != 1:
            raise InvalidInput(f"users and items must be 1-d and of equal length ({users.shape}, {items.shape})")
        for arr, n, what in ((users, self.n_users, "user"), (items, self.n_items, "item")):
            if arr.size and (arr.min() < -1 or arr.max() >= n):
                bad = arr[(arr < -1) | (arr >= n)][0]
                raise NotFound(f"unknown {what} index {int(bad)} (there are {n} {what}s; -1 means unknown)")
        rating = np.full(users.shape[0], self.global_mean, dtype=np.float64)
        impossible = np.ones(users.shape[0], dtype=bool)
        known = np.flatnonzero((users >= 0) & (items >= 0))
        if known.shape[0] == 0:
            return Predictions(rating, impossible)
        side = self._users
        lens = side.count_int[users[known]]
        for lo, hi in _chunks(lens, self.config.pair_chunk):
            p = known[lo:hi]
            bptr, pos = _gather(side.indptr, users[p])
            pair = np.repeat(np.arange(hi - lo), np.diff(bptr))
            j = side.indices[pos].astype(np.int64)
            i = items[p][pair]
            other = j != i
            pair, j, i, r = pair[other], j[other], i[other], side.left["x"][pos[other]]
            sim = self._items.pair_scores(i, j, measure, self.config.pair_chunk)
            num = np.bincount(pair, weights=r * sim, minlength=hi - lo)
            den = np.bincount(pair, weights=sim, minlength=hi - lo)
            ok = den != 0
            rating[p[ok]] = num[ok] / den[ok]
            impossible[p[ok]] = False
        return Predictions(rating, impossible)

    # -- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def _valid(idx, n: int, what: str) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise NotFound(f"unknown {what} index {int(idx[(idx < 0) | (idx >= n)][0])}")
        return idx


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    return int(k)


def _check_min_common(m: int) -> int:
    if int(m) < 1:
        raise InvalidInput(f"min_common must be at least 1, got {m}")
    return int(m)


def _rank_or_identity(rank, n: int, name: str) -> np.ndarray:
    if rank is None:
        return np.arange(n, dtype=np.int64)
    rank = np.asarray(rank, dtype=np.int64)
    if rank.shape != (n,) or (n and not np.array_equal(np.bincount(rank, minlength=n), np.ones(n))):
        raise InvalidInput(f"{name} must be a permutation of 0..{n - 1}")
    return rank


def _validate(a: Mapping[str, np.ndarray]) -> None:
    """Cheap consistency checks of saved arrays (the artifact store checks the bytes themselves)."""
    shape = np.asarray(a["shape"])
    if shape.shape != (2,):
        raise ArtifactError(f"similarity shape array has shape {shape.shape}, expected (2,)")
    n_users, n_items = (int(v) for v in shape)
    for side, n_rows, n_cols, other in (("item", n_items, n_users, "users"), ("user", n_users, n_items, "items")):
        indptr, idx, val = a[f"{side}_indptr"], a[f"{side}_{other}"], a[f"{side}_ratings"]
        if indptr.shape != (n_rows + 1,) or idx.shape != val.shape or idx.ndim != 1:
            raise ArtifactError(f"similarity {side} CSR arrays have inconsistent shapes")
        if int(indptr[0]) != 0 or int(indptr[-1]) != idx.shape[0] or np.any(np.diff(indptr) < 0):
            raise ArtifactError(f"similarity {side}_indptr is not a valid CSR index pointer")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n_cols):
            raise ArtifactError(f"similarity {side}_{other} holds an index out of range")
        for stat in ("rank", "count", "mean", "norm"):
            if a[f"{side}_{stat}"].shape != (n_rows,):
                raise ArtifactError(
                    f"similarity {side}_{stat} has shape {a[f'{side}_{stat}'].shape}, expected ({n_rows},)"
                )
        if not np.array_equal(np.asarray(a[f"{side}_count"]), np.diff(indptr)):
            raise ArtifactError(f"similarity {side}_count does not match {side}_indptr")
    if a["item_indptr"][-1] != a["user_indptr"][-1]:
        raise ArtifactError("similarity item and user layouts hold different numbers of ratings")

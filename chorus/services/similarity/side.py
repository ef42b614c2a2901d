"""One orientation of the ratings (items against users, or users against items) and the sums every measure is
computed from, over inverted indexes.

Candidates for "most similar to ``a``" are the rows sharing at least ``min_common`` columns with ``a``, never
``a`` itself. They come from the inverted indexes: the row of ``a`` in the rows×columns matrix times the
columns×rows matrix (a sparse product touches only the columns of ``a`` and their rows, never the whole
catalogue).

How the sums (:class:`chorus.services.similarity.measures.Term`) are formed: for a block of rows ``R``, scipy's
CSR products ``B[R] Bᵀ`` (common counts; ``B`` is the 0/1 pattern), ``X[R] Xᵀ`` (the dot products), ``Z[R] Zᵀ``
(the centred dot products; ``Z`` holds ``R_ua − R̄_a`` on the pattern) and, for the two sums of centred squares
over the common columns, the complex products ``(Z² + i)[R] Bᵀ`` and ``B[R] (Z² + i)ᵀ`` whose imaginary part is the
common count (so no entry is dropped). scipy drops entries whose sum is exactly 0;
:func:`chorus.services.similarity.sparse.aligned` puts such products back on the common counts' entries. Each
entry of a sparse product depends only on its own row, summed over the common columns in ascending order, so a
one-row query, a many-row table build and the pairwise path (:meth:`Side.pair_scores`) produce the same
floating-point numbers (the tests check this bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from chorus.services.similarity.measures import MeasureSpec, Term, measure_spec, measure_specs, terms_needed
from chorus.services.similarity.ranking import decode_keys, rank_bits, ranking_keys, smallest_keys, top_k_rows
from chorus.services.similarity.sparse import aligned, chunks, gather_rows
from chorus.shared.contract.names import Measure
from chorus.shared.indices import check_index

PRODUCT_PER_WALK = 6
""":meth:`Side.pair_scores` forms a row's candidates when their work times the number of sparse products the
measure needs (:func:`products`) is at most this many times the entries its pairs would walk. Measured on
MovieLens 100K and on 300,000 generated reviews: a walked entry (a binary search among all entries) costs
45-65 ns, a term of one product 9-30 ns (more when the rows are many and their output large)."""
SLOT_BUDGET = 1 << 22
"""Slots of the dense (row, column) -> position map of :meth:`Side.pair_scores` by row (16 MB of int32)."""


def products(needs: frozenset[Term]) -> int:
    """The sparse products :meth:`Side.candidates` forms for the terms ``needs``: the common counts (or, with
    the centred sums of squares, the two complex products that carry them), and one per dot product."""
    squares = Term.centred_squares_a in needs or Term.centred_squares_b in needs
    return (2 if squares else 1) + (Term.dot in needs) + (Term.centred_dot in needs)


@cache
def plan(measures: tuple[str, ...]) -> tuple[tuple[MeasureSpec, ...], frozenset[Term]]:
    """The specifications of ``measures`` and every term they need (looked up once per combination)."""
    specs = measure_specs(measures)
    return specs, terms_needed(specs)


def index_dtype(*sizes: int) -> type[np.signedinteger]:
    """The dtype of a side's column indices: int32 while every size fits, else int64."""
    return np.int32 if max(sizes, default=0) < 2**31 - 1 else np.int64


class _Right(dict[str, sp.csr_array]):
    """A dict of the columns×rows matrices that forms each one the first time it is read (two threads may both
    form it; either result is the same matrix)."""

    def __init__(self, form: Callable[[str], sp.csr_array]) -> None:
        super().__init__()
        self._form = form

    def __missing__(self, kind: str) -> sp.csr_array:
        matrix = self[kind] = self._form(kind)
        return matrix


class Candidates(NamedTuple):
    """Every (query row, candidate) pair of a block with its raw scores."""

    row: np.ndarray
    """int64 (m,): position of the query row in the block."""
    col: np.ndarray
    """int32 or int64 (m,): the candidate."""
    scores: dict[Measure, np.ndarray]
    """Raw score of each pair, float64 (m,), by measure."""


class Side:
    """The ratings as rows (items, or users) against columns (users, or items).

    ``indptr/indices/ratings`` is the rows×columns CSR layout, ``t_*`` the columns×rows layout of the same
    ratings. Statistics are per row: number of ratings, mean rating, Euclidean norm of the rating vector.

    Parameters
    ----------
    name : str
        What a row is ("item", "user"), for messages.
    indptr : int64 (n_rows + 1,); indices : int (nnz,); ratings : float (nnz,)
    t_indptr : int64 (n_cols + 1,); t_indices : int (nnz,); t_ratings : float (nnz,)
    count : int (n_rows,); mean, norm : float64 (n_rows,)
    rank : int64 (n_rows,)
        Raw-id rank of each row (the ranking tie-break).
    eager : bool
        Form every columns×rows matrix now (a served index); False forms each on first use (a side built for one
        query, which reads one or two of them).
    """

    def __init__(
        self,
        name: str,
        indptr: np.ndarray,
        indices: np.ndarray,
        ratings: np.ndarray,
        t_indptr: np.ndarray,
        t_indices: np.ndarray,
        t_ratings: np.ndarray,
        count: np.ndarray,
        mean: np.ndarray,
        norm: np.ndarray,
        rank: np.ndarray,
        eager: bool = True,
    ) -> None:
        self.name = name
        self.n_rows = int(indptr.shape[0]) - 1
        self.n_cols = int(t_indptr.shape[0]) - 1
        nnz = int(indices.shape[0])
        idx = index_dtype(nnz, self.n_rows, self.n_cols)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices: np.ndarray = np.asarray(indices, dtype=idx)
        t_indptr = np.asarray(t_indptr, dtype=idx)
        t_indices = np.asarray(t_indices, dtype=idx)
        self.count = np.asarray(count, dtype=np.float64)
        self.count_int = np.diff(self.indptr)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.norm = np.asarray(norm, dtype=np.float64)
        self.rank = np.asarray(rank, dtype=np.int64)
        self.index_of_rank = np.empty_like(self.rank)
        self.index_of_rank[self.rank] = np.arange(self.n_rows)
        self.rank_bits = rank_bits(self.n_rows)
        ratings = np.asarray(ratings, dtype=np.float64)
        t_ratings = np.asarray(t_ratings, dtype=np.float64)
        # The same (row, col) value is computed from the same operands in both layouts, so the products
        # below see identical numbers whichever side they come from.
        z = ratings - self.mean[np.repeat(np.arange(self.n_rows), self.count_int)]
        zt = t_ratings - self.mean[t_indices]
        ones = np.ones(nnz)
        self._t_layout = (t_indices, t_indptr, (self.n_cols, self.n_rows))
        self.t_indptr = t_indptr
        """The columns×rows indptr: column ``c`` holds ``t_indptr[c + 1] - t_indptr[c]`` entries."""
        # Complex values carry two sums through one product with the exact pattern of the common counts:
        # (z² + i)[R] · (1 + 0i)ᵀ = Σ z_r² + i·|common|, and 1[R] · (z² + i)ᵀ = Σ z_c² + i·|common|. The
        # imaginary part is ≥ 1 on every candidate, so scipy never drops an entry, and multiplying by exact
        # 0s and 1s leaves the real parts bit-identical to the real products.
        self.left = {"b": ones, "x": ratings, "z": z, "z2": z * z}
        """Entry values of the rows×columns layout by kind: ``b`` ones, ``x`` ratings, ``z`` centred, ``z2``."""
        self._right_values: dict[str, Callable[[], np.ndarray]] = {
            "b": lambda: ones,
            "x": lambda: t_ratings,
            "z": lambda: zt,
            "bc": lambda: ones + 0j,
            "z2i": lambda: zt * zt + 1j,
        }
        self.right: dict[str, sp.csr_array] = _Right(self._right_matrix)
        """The columns×rows matrices by kind (``bc`` = ``b`` + 0i, ``z2i`` = ``z²`` + i)."""
        if eager:
            for kind in self._right_values:
                self.right[kind] = self._right_matrix(kind)
        self._whole: dict[str, sp.csr_array] = {}
        self._keys_sorted: np.ndarray | None = None
        self._work: np.ndarray | None = None

    def whole(self, kind: str) -> sp.csr_array:
        """The rows×columns matrix of ``kind`` (a key of :attr:`left`), formed on first use."""
        matrix = self._whole.get(kind)
        if matrix is None:
            matrix = self._whole[kind] = sp.csr_array(
                (self.left[kind], self.indices, self.indptr.astype(self.indices.dtype)),
                shape=(self.n_rows, self.n_cols),
            )
        return matrix

    def _right_matrix(self, kind: str) -> sp.csr_array:
        t_indices, t_indptr, shape = self._t_layout
        return sp.csr_array((self._right_values[kind](), t_indices, t_indptr), shape=shape)

    @property
    def ratings(self) -> np.ndarray:
        """The ratings in rows×columns CSR order, float64 (nnz,)."""
        return self.left["x"]

    def check_row(self, i: int) -> int:
        """``i``, checked to be a row (:func:`check_index`)."""
        return check_index(i, self.n_rows, self.name)

    def row_entries(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The columns of row ``i`` (ascending, int32 or int64 view) and their ratings (float64 view)."""
        i = self.check_row(i)
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.ratings[a:b]

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """Entries of each of ``rows`` (int (r,), valid rows): int64 (r,)."""
        lengths: np.ndarray = self.count_int[rows]
        return lengths

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entries of ``rows`` (int (r,), valid rows), in that order: (indptr int64 (r + 1,), columns int64
        (nnz,), ratings float64 (nnz,)), each row's columns ascending."""
        bptr, pos = gather_rows(self.indptr, np.asarray(rows, dtype=np.int64))
        return bptr, self.indices[pos].astype(np.int64), self.ratings[pos]

    # -- block products -----------------------------------------------------------------------------------

    def left_block(self, kind: str, bptr: np.ndarray, take: np.ndarray | slice) -> sp.csr_array:
        """Rows of the rows×columns matrix of ``kind`` (a key of :attr:`left`, or the complex ``z2i`` and ``bc``,
        formed for the block only). ``bptr``: int64 (r + 1,) the block's indptr; ``take``: positions of its
        entries."""
        if kind == "z2i":
            data = self.left["z2"][take] + 1j
        elif kind == "bc":
            data = self.left["b"][take] + 0j
        else:
            data = self.left[kind][take]
        return sp.csr_array(
            (data, self.indices[take], bptr.astype(self.indices.dtype)), shape=(bptr.shape[0] - 1, self.n_cols)
        )

    def row_terms(self, needs: frozenset[Term], a: np.ndarray, b: np.ndarray) -> dict[Term, np.ndarray]:
        """The per-row statistics among ``needs`` for pairs of rows ``a``, ``b`` (int (m,); either may be (1,),
        one row paired with every other)."""
        out: dict[Term, np.ndarray] = {}
        if Term.count_a in needs:
            out[Term.count_a] = self.count.take(a)
        if Term.count_b in needs:
            out[Term.count_b] = self.count.take(b)
        if Term.norm_a in needs:
            out[Term.norm_a] = self.norm.take(a)
        if Term.norm_b in needs:
            out[Term.norm_b] = self.norm.take(b)
        return out

    def candidates(
        self,
        rows: np.ndarray,
        measures: Iterable[str],
        min_common: int = 1,
        exclude_self: bool = True,
        contiguous: bool = False,
    ) -> Candidates:
        """Every (row, candidate) pair sharing at least ``min_common`` columns, with raw scores.

        ``rows``: int64 (r,) row indices (ascending and consecutive when ``contiguous``).
        """
        specs, needs = plan(tuple(measures))
        rows = np.asarray(rows, dtype=np.int64)
        take: np.ndarray | slice
        if contiguous and rows.shape[0]:
            a, b = int(self.indptr[rows[0]]), int(self.indptr[rows[-1] + 1])
            bptr, take = self.indptr[rows[0] : rows[-1] + 2] - a, slice(a, b)
        else:
            bptr, take = gather_rows(self.indptr, rows)
        squares = Term.centred_squares_a in needs or Term.centred_squares_b in needs
        if squares:
            common = self.left_block("z2i", bptr, take) @ self.right["bc"]  # Σ z_row² + i·|common|
            roots = self.left_block("bc", bptr, take) @ self.right["z2i"]  # Σ z_col² + i·|common|
            if not np.array_equal(roots.indices, common.indices):  # same pattern by construction
                raise AssertionError("scipy returned different patterns for equal-pattern products")
            cnt_all = common.data.imag
        else:
            common = self.left_block("b", bptr, take) @ self.right["b"]
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
        # one query row (an online query): its statistics broadcast instead of being gathered per candidate
        terms = self.row_terms(needs, rows if rows.shape[0] == 1 else rows[row], col)
        terms[Term.common] = cnt
        for term, kind in ((Term.dot, "x"), (Term.centred_dot, "z")):
            if term in needs:
                terms[term] = sel(aligned(common, self.left_block(kind, bptr, take) @ self.right[kind]))
        if squares:
            terms[Term.centred_squares_a] = sel(common.data.real)
            terms[Term.centred_squares_b] = sel(roots.data.real)
        return Candidates(row, col, {spec.measure: spec.score(terms) for spec in specs})

    # -- queries ------------------------------------------------------------------------------------------

    def most_similar(self, i: int, k: int, measure: str, min_common: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to row ``i``: (int64 indices (n,), float64 rounded scores (n,)), n ≤ k,
        best first (ranked as :mod:`chorus.services.similarity.ranking` says)."""
        i = self.check_row(i)
        cand = self.candidates(np.array([i]), (measure,), min_common, contiguous=True)
        (scores,) = cand.scores.values()
        keys = smallest_keys(ranking_keys(scores, self.rank[cand.col], self.rank_bits), k)
        return decode_keys(keys, self.index_of_rank, self.rank_bits)

    def top_k_block(
        self, start: int, stop: int, k: int, measures: Iterable[str]
    ) -> dict[Measure, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Top ``k`` neighbours of rows ``start..stop-1`` for each measure.

        Returns ``{measure: (neighbours int32 (r, k) padded with -1, rounded scores float64 (r, k) padded with
        0, number of neighbours int32 (r,))}``.
        """
        rows = np.arange(start, stop, dtype=np.int64)
        r = rows.shape[0]
        cand = self.candidates(rows, measures, contiguous=True)
        n_nb = np.minimum(np.bincount(cand.row, minlength=r), k).astype(np.int32)
        out = {}
        for measure, scores in cand.scores.items():
            nbrs, rounded = top_k_rows(cand.row, cand.col, scores, self.rank, r, k, self.index_of_rank, self.rank_bits)
            out[measure] = (nbrs, rounded, n_nb)
        return out

    def row_work(self) -> np.ndarray:
        """Per row, Σ over its columns of their number of entries: an upper bound on its candidate count.
        int64 (n_rows,), computed once."""
        if self._work is None:
            col_len = np.diff(self.right["b"].indptr).astype(np.int64)
            per_entry = col_len[self.indices]
            csum = np.concatenate([[0], np.cumsum(per_entry, dtype=np.int64)])
            self._work = csum[self.indptr[1:]] - csum[self.indptr[:-1]]
        return self._work

    # -- arbitrary pairs ----------------------------------------------------------------------------------

    def _sorted_keys(self) -> np.ndarray:
        """row * n_cols + col for every entry; sorted, because the CSR rows are and their columns are."""
        if self._keys_sorted is None:
            rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), self.count_int)
            self._keys_sorted = rows * self.n_cols + self.indices
        return self._keys_sorted

    def pair_scores(
        self, a: np.ndarray, b: np.ndarray, measure: str, chunk: int, by_row: bool | None = None
    ) -> np.ndarray:
        """sim(a[p], b[p]) for every p. ``a, b``: int64 (n,) valid row indices -> float64 (n,).

        Two ways, with the same floating-point results (every sum adds its terms in ascending column order
        from 0 either way):

        * walked: the shorter of the two rows is walked and each of its columns looked up in the other row
          (binary search in the sorted entry keys), Σ_p min(|a_p|, |b_p|) · log(nnz);
        * by row: the candidate row of each distinct ``a`` (the sparse products of :meth:`candidates`, cost
          :meth:`row_work`) is formed once and every pair of that row looked up in it: the way when a row has
          many pairs (a batch of predictions pairs each query item with every item its user rated).

        ``by_row``: None picks per distinct ``a`` (by row when its work times :func:`products` is at most
        :data:`PRODUCT_PER_WALK` times the entries its pairs would walk), True or False forces one way. At most
        ``chunk`` entries are expanded (walked) or ``chunk`` work formed (by row) at once.
        """
        spec = measure_spec(measure)
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        out = np.zeros(a.shape[0], dtype=np.float64)
        if a.shape[0] == 0:
            return out
        if by_row is None:
            walked = np.bincount(a, weights=np.minimum(self.count_int[a], self.count_int[b]), minlength=self.n_rows)
            cost = products(terms_needed((spec,)))
            row_wise = self.row_work()[a] * cost <= PRODUCT_PER_WALK * walked[a]
        else:
            row_wise = np.full(a.shape[0], by_row)
        for chosen, way in ((row_wise, self._pair_scores_by_row), (~row_wise, self._pair_scores_walked)):
            p = np.flatnonzero(chosen)
            if p.shape[0]:
                out[p] = way(a[p], b[p], spec, chunk)
        return out

    def _pair_scores_walked(self, a: np.ndarray, b: np.ndarray, spec: MeasureSpec, chunk: int) -> np.ndarray:
        """:meth:`pair_scores` by walking the shorter row of each pair."""
        needs = terms_needed((spec,))
        out = np.zeros(a.shape[0], dtype=np.float64)
        keys = self._sorted_keys()
        swap = self.count_int[a] > self.count_int[b]
        s, t = np.where(swap, b, a), np.where(swap, a, b)
        lens = self.count_int[s]
        n_cols = np.int64(self.n_cols)
        for lo, hi in chunks(lens, chunk):
            bptr, pos = gather_rows(self.indptr, s[lo:hi])
            pair = np.repeat(np.arange(hi - lo), np.diff(bptr))
            target = t[lo:hi][pair] * n_cols + self.indices[pos]
            at = np.minimum(np.searchsorted(keys, target), keys.shape[0] - 1)
            hit = keys[at] == target
            pair, pos_s, pos_t = pair[hit], pos[hit], at[hit]
            m = hi - lo
            out[lo:hi] = spec.score(self._pair_terms(needs, a[lo:hi], b[lo:hi], swap[lo:hi], pair, pos_s, pos_t, m))
        return out

    def _pair_scores_by_row(self, a: np.ndarray, b: np.ndarray, spec: MeasureSpec, chunk: int) -> np.ndarray:
        """:meth:`pair_scores` from the candidate rows of the distinct ``a``.

        The rows go through :meth:`candidates` in blocks of at most ``chunk`` work; each block's scores are
        looked up through a dense (row, column) -> position map over the block's rows and the distinct ``b``
        only (at most :data:`SLOT_BUDGET` slots), so a pair costs O(1) once its row is formed. A pair absent
        from its row's candidates shares no column: score 0, as for every measure."""
        out = np.zeros(a.shape[0], dtype=np.float64)
        rows = np.flatnonzero(np.bincount(a, minlength=self.n_rows))
        used = np.flatnonzero(np.bincount(b, minlength=self.n_rows))
        width = used.shape[0]
        compact = np.full(self.n_rows, -1, dtype=np.int64)
        compact[used] = np.arange(width)
        most = max(1, SLOT_BUDGET // width)
        blocks = [
            (lo + s, min(lo + s + most, hi))
            for lo, hi in chunks(self.row_work()[rows], chunk)
            for s in range(0, hi - lo, most)
        ]
        block_of = np.zeros(self.n_rows, dtype=np.int64)
        local = np.zeros(self.n_rows, dtype=np.int64)
        for n_block, (lo, hi) in enumerate(blocks):
            block_of[rows[lo:hi]] = n_block
            local[rows[lo:hi]] = np.arange(hi - lo)
        block = block_of[a]
        # pairs in block order (a counting sort when the block numbers fit 16 bits)
        order = np.argsort(block.astype(np.uint16) if len(blocks) <= 2**16 else block, kind="stable")
        starts = np.searchsorted(block[order], np.arange(len(blocks) + 1))
        # a block's candidates number at most its work: at most chunk, or one row's work (at most nnz)
        small = max(chunk, self.indices.shape[0]) < 2**31
        slot = np.zeros(min(most, rows.shape[0]) * width, dtype=np.int32 if small else np.int64)
        for n_block, (lo, hi) in enumerate(blocks):
            cand = self.candidates(rows[lo:hi], (spec.measure,), exclude_self=False)
            (score,) = cand.scores.values()
            if score.shape[0] == 0:
                continue
            col = compact[cand.col]
            wanted = np.flatnonzero(col >= 0)
            slot[cand.row[wanted] * width + col[wanted]] = wanted
            p = order[starts[n_block] : starts[n_block + 1]]
            row_p = local[a[p]]
            # a slot this block did not write holds an earlier block's position: check that it is this pair
            at = np.minimum(slot[row_p * width + compact[b[p]]], score.shape[0] - 1)
            hit = (cand.row[at] == row_p) & (cand.col[at] == b[p])
            out[p[hit]] = score[at[hit]]
        return out

    def _pair_terms(
        self,
        needs: frozenset[Term],
        a: np.ndarray,
        b: np.ndarray,
        swap: np.ndarray,
        pair: np.ndarray,
        pos_s: np.ndarray,
        pos_t: np.ndarray,
        m: int,
    ) -> dict[Term, np.ndarray]:
        """The terms of ``m`` pairs ``(a, b)`` from their shared entries: ``pair`` (int (h,)) numbers the pair of
        each shared column, ``pos_s`` / ``pos_t`` its entry in the walked (shorter) row and in the other one;
        ``swap`` (bool (m,)) is True where the walked row is ``b``."""
        terms = self.row_terms(needs, a, b)
        terms[Term.common] = np.bincount(pair, minlength=m).astype(np.float64)
        for term, kind in ((Term.dot, "x"), (Term.centred_dot, "z")):
            if term in needs:
                v = self.left[kind]
                terms[term] = np.bincount(pair, weights=v[pos_s] * v[pos_t], minlength=m)
        if Term.centred_squares_a in needs or Term.centred_squares_b in needs:
            z2 = self.left["z2"]
            ss = np.bincount(pair, weights=z2[pos_s], minlength=m)
            tt = np.bincount(pair, weights=z2[pos_t], minlength=m)
            terms[Term.centred_squares_a] = np.where(swap, tt, ss)
            terms[Term.centred_squares_b] = np.where(swap, ss, tt)
        return terms

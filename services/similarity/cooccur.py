"""Compiled kernels of the neighbour-table build: every co-occurring pair of a block of rows with all of its sums
in one pass, and the top ``k`` of each row (numba; only the offline build imports this module).

Why a kernel. The cost of an exact table is the co-occurrence work ``W = Σ_u |I_u|²`` (every pair of items a user
reviewed is met once per such user) plus one step per distinct co-occurring pair. Scipy's products (the path
:meth:`chorus.services.similarity.side.Side.candidates` takes online) walk ``W`` once per sum: the common count,
the dot products, the centred dot products and the two sums of centred squares take four products, two of them
complex, each also walked twice (scipy sizes its output first), then the centred products are re-aligned on
the counts' pattern. :func:`block_terms` walks ``W`` once with five accumulators per candidate, and
:func:`top_k_segments` selects each row's best ``k`` by a partial sort of that row's keys, where the numpy path
sorts the whole block. On 1M generated reviews that is the difference between about 180 s and 40 s of table
build on one core of this (shared) machine.

The sums are formed exactly as the scipy products form them: for each candidate, over the common columns in
ascending order, from zero, one multiply and one add per term (no fused multiply-add: numba compiles without
``fastmath``), so the table holds the same floating-point numbers as an online query (the tests check this bit
for bit).

``W`` itself grows with the square of the heaviest users' activity: in the generated data users are drawn from
Zipf weights with exponent 1, so the busiest user's review count grows in proportion to the file
(4,634 reviews at 1M, 20,050 at 5M) and ``W`` by 17x for 5x the reviews (4.3e8 to 7.3e9). That, not the
algorithm, is why the table time grows faster than the data; the kernel makes each unit of ``W`` cheaper and
the blocks run on every core (:func:`chorus.shared.workers.map_threads`: the kernels release the GIL).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

# Compiled kernels are cached beside this file; where it is read-only (an installed image run as another user),
# in the temporary folder instead (numba refuses to cache with no writable place). Set before numba loads.
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "chorus-numba-cache")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from chorus.services.similarity.measures import Term
from chorus.services.similarity.ranking import decode_keys, ranking_keys
from chorus.services.similarity.side import Side, plan
from chorus.services.similarity.sparse import gather_rows
from chorus.shared.contract import Measure


@numba.njit(nogil=True, cache=True)
def _fill(  # noqa: ANN202
    rows,  # noqa: ANN001
    indptr,  # noqa: ANN001
    indices,  # noqa: ANN001
    t_indptr,  # noqa: ANN001
    t_indices,  # noqa: ANN001
    x,  # noqa: ANN001
    z,  # noqa: ANN001
    z2,  # noqa: ANN001
    tx,  # noqa: ANN001
    tz,  # noqa: ANN001
    tz2,  # noqa: ANN001
    exclude_self,  # noqa: ANN001
    want_dot,  # noqa: ANN001
    want_centred,  # noqa: ANN001
    out_ptr,  # noqa: ANN001
    out,  # noqa: ANN001
):
    """Every candidate of every query row with its sums, rows in order; returns False when ``out`` is too small.

    The accumulators of a candidate share one 64-byte record (``acc[b]``: the query that last touched it, the
    count and the four sums), so a step of ``W`` touches one cache line, however large the catalogue."""
    n_rows_total = indptr.shape[0] - 1
    acc = np.zeros((n_rows_total, 8))
    acc[:, 0] = -1.0
    touched = np.empty(n_rows_total, dtype=np.int64)
    o = 0
    cap = out.shape[1]
    for q in range(rows.shape[0]):
        a = rows[q]
        m = 0
        for p in range(indptr[a], indptr[a + 1]):
            u = indices[p]
            xa, za, z2a = x[p], z[p], z2[p]
            for t in range(t_indptr[u], t_indptr[u + 1]):
                b = t_indices[t]
                rec = acc[b]
                if rec[0] != q:
                    rec[0] = q
                    touched[m] = b
                    m += 1
                    rec[1] = 0.0
                    rec[2] = 0.0
                    rec[3] = 0.0
                    rec[4] = 0.0
                    rec[5] = 0.0
                rec[1] += 1.0
                if want_dot:
                    rec[2] += xa * tx[t]
                if want_centred:
                    rec[3] += za * tz[t]
                    rec[4] += z2a
                    rec[5] += tz2[t]
        if o + m > cap:
            return False
        for j in range(m):
            b = touched[j]
            if exclude_self and b == a:
                continue
            rec = acc[b]
            out[0, o] = b
            out[1, o] = rec[1]
            out[2, o] = rec[2]
            out[3, o] = rec[3]
            out[4, o] = rec[4]
            out[5, o] = rec[5]
            o += 1
        out_ptr[q + 1] = o
    return True


def block_terms(
    rows: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    t_indptr: np.ndarray,
    t_indices: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    exclude_self: bool,
    want_dot: bool,
    want_centred: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every (query row, candidate) pair sharing a column, with its sums.

    Parameters
    ----------
    rows : int64 (r,)
        Query rows.
    indptr : int64 (n_rows + 1,); indices : int (nnz,)
        The rows×columns layout; ``t_indptr`` / ``t_indices`` the columns×rows one.
    values : dict
        float64 entry values: ``x`` (ratings), ``z`` (centred), ``z2`` (centred squared) in the rows×columns
        order, and ``tx``, ``tz``, ``tz2`` the same in the columns×rows order.
    exclude_self : bool
        Leave a row out of its own candidates.
    want_dot, want_centred : bool
        Form the dot products / the centred sums (zeros otherwise).

    Returns
    -------
    (indptr int64 (r + 1,) of the pairs by query row, ``{"col": int64, "common", "dot", "centred_dot",
    "squares_a", "squares_b": float64}``, each (m,))
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    # Σ over the rows of Σ_{u∈row}|I_u| bounds the candidates (a row meets each candidate at least once)
    col_len = np.diff(t_indptr)
    lens = indptr[rows + 1] - indptr[rows]
    bound = int(col_len[indices[gather_rows(indptr, rows)[1]]].sum()) if lens.sum() else 0
    n_rows = indptr.shape[0] - 1
    cap = min(bound, rows.shape[0] * n_rows)
    out = np.empty((6, cap))
    args = (rows, indptr, indices, t_indptr, t_indices, values["x"], values["z"], values["z2"])
    ok = _fill(*args, values["tx"], values["tz"], values["tz2"], exclude_self, want_dot, want_centred, ptr, out)
    if not ok:  # cannot happen: the bound holds by construction
        raise AssertionError("co-occurrence bound exceeded")
    m = int(ptr[-1])
    names = ("common", "dot", "centred_dot", "squares_a", "squares_b")
    sums = {name: out[j + 1, :m] for j, name in enumerate(names)}
    sums["col"] = out[0, :m].astype(np.int64)
    return ptr, sums


@numba.njit(nogil=True, cache=True)
def _top_k(ptr, keys, k, out_keys, out_len):  # noqa: ANN001, ANN202
    """Per segment, a max-heap of the ``k`` smallest keys seen (most keys lose one comparison against its
    root), then sorted."""
    heap = np.empty(k, dtype=np.int64)
    for q in range(ptr.shape[0] - 1):
        n = 0
        for p in range(ptr[q], ptr[q + 1]):
            key = keys[p]
            if n < k:  # sift up
                i = n
                n += 1
                while i > 0:
                    parent = (i - 1) >> 1
                    if heap[parent] >= key:
                        break
                    heap[i] = heap[parent]
                    i = parent
                heap[i] = key
            elif key < heap[0]:  # replace the root, sift down
                i = 0
                while True:
                    c = 2 * i + 1
                    if c >= k:
                        break
                    if c + 1 < k and heap[c + 1] > heap[c]:
                        c += 1
                    if heap[c] <= key:
                        break
                    heap[i] = heap[c]
                    i = c
                heap[i] = key
        out_keys[q, :n] = np.sort(heap[:n])
        out_len[q] = n


def top_k_segments(ptr: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest keys of each row, ascending.

    ``ptr``: int64 (r + 1,) segments of ``keys`` (int64 (m,), distinct within a segment) by row.
    Returns (int64 (r, k), the unused tail of a row 0; int64 (r,) how many are set).
    """
    r = ptr.shape[0] - 1
    out = np.zeros((r, k), dtype=np.int64)
    length = np.zeros(r, dtype=np.int64)
    _top_k(ptr, keys, k, out, length)
    return out, length


def kernel_values(side: Side) -> dict[str, np.ndarray]:
    """The entry values :func:`block_terms` reads, from ``side``'s layouts (contiguous float64 arrays)."""
    return {
        "x": side.left["x"],
        "z": side.left["z"],
        "z2": side.left["z2"],
        "tx": side.right["x"].data,
        "tz": side.right["z"].data,
        "tz2": np.ascontiguousarray(side.right["z2i"].data.real),
    }


def table_block(
    side: Side, values: dict[str, np.ndarray], start: int, stop: int, k: int, measures: Iterable[str]
) -> tuple[dict[Measure, tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Top ``k`` neighbours of rows ``start..stop-1`` for each measure, and the number of co-occurring pairs
    scored. The first is what
    :meth:`chorus.services.similarity.side.Side.top_k_block` (the readable reference it is tested against)
    returns, ``{measure: (neighbours int32 (r, k) padded with -1, rounded scores float64 (r, k) padded with 0,
    number of neighbours int32 (r,))}``, through :func:`block_terms` (on ``values``: :func:`kernel_values`) and
    :func:`top_k_segments`."""
    specs, needs = plan(tuple(measures))
    rows = np.arange(start, stop, dtype=np.int64)
    ptr, sums = block_terms(
        rows,
        side.indptr,
        side.indices,
        side.right["b"].indptr,
        side.right["b"].indices,
        values,
        exclude_self=True,
        want_dot=Term.dot in needs,
        want_centred=Term.centred_dot in needs or Term.centred_squares_a in needs,
    )
    lens = np.diff(ptr)
    col = sums["col"]
    terms = side.row_terms(needs, np.repeat(rows, lens), col)
    terms[Term.common] = sums["common"]
    terms[Term.dot] = sums["dot"]
    terms[Term.centred_dot] = sums["centred_dot"]
    terms[Term.centred_squares_a] = sums["squares_a"]
    terms[Term.centred_squares_b] = sums["squares_b"]
    n_nb = np.minimum(lens, k).astype(np.int32)
    pad = np.arange(k)[None, :] >= n_nb[:, None]
    rank_of_col = side.rank[col]
    out = {}
    for spec in specs:
        best, _ = top_k_segments(ptr, ranking_keys(spec.score(terms), rank_of_col, side.rank_bits), k)
        idx, rounded = decode_keys(best, side.index_of_rank, side.rank_bits)
        out[spec.measure] = (np.where(pad, -1, idx).astype(np.int32), np.where(pad, 0.0, rounded), n_nb)
    return out, int(col.shape[0])

"""The compiled kernel of the neighbour-table build: for a block of rows, every co-occurring pair with all of its
sums in one pass, each pair scored by every measure and kept in that measure's top ``k`` as soon as the row's
sums are complete (numba; only the offline build imports this module).

Why a kernel. The cost of an exact table is the co-occurrence work ``W = Σ_u |I_u|²`` (every pair of items a user
reviewed is met once per such user) plus the work per distinct co-occurring pair (scoring and ranking it).
Scipy's products (the path :meth:`chorus.services.similarity.side.Side.candidates` takes online) walk ``W`` once
per sum: the common count, the dot products, the centred dot products and the two sums of centred squares take
four products, two of them complex, each also walked twice (scipy sizes its output first), then every pair is
scored, keyed and ranked by a dozen whole-array numpy passes. :func:`_table_rows` walks ``W`` once with five
accumulators per candidate, then scores each candidate of the row and pushes its ranking key into a heap of the
``k`` best per measure: no per-pair array is ever written. On 1M generated reviews, one core: the scipy path
about 180 s, a kernel for the sums with numpy scoring 60 s (three quarters of it the per-pair numpy passes), this
fused kernel 22 s.

The sums are formed exactly as the scipy products form them: for each candidate, over the common columns in
ascending order, from zero, one multiply and one add per term (no fused multiply-add: numba compiles without
``fastmath``), and the scores and ranking keys with the operations of
:mod:`chorus.services.similarity.measures` and :func:`chorus.services.similarity.ranking.ranking_keys` in the same
order, so the table holds the same floating-point numbers as an online query (the tests check this bit for bit).

``W`` itself grows with the square of the heaviest users' activity: in the generated data users are drawn from
Zipf weights with exponent 1, so the busiest user's review count grows in proportion to the file
(4,634 reviews at 1M, 20,050 at 5M) and ``W`` by 17x for 5x the reviews (4.3e8 to 7.3e9). That, not the
algorithm, is why the table time grows faster than the data; the kernel makes each unit of ``W`` cheaper and
the blocks run on every core (:func:`chorus.shared.workers.map_threads`: the kernel releases the GIL).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

# Compiled kernels are cached beside this file; where it is read-only (an installed image run as another user),
# in the temporary folder instead (numba refuses to cache with no writable place). Set before numba loads.
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "chorus-numba-cache")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from chorus.services.similarity.measures import PEARSON_SIGNIFICANCE
from chorus.services.similarity.ranking import Q_MAX, SCALE, decode_keys
from chorus.services.similarity.side import Side, plan
from chorus.services.similarity.sparse import coo_order
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.names import Measure

JACCARD, COSINE, PEARSON = 0, 1, 2
TILE = 4096
"""Candidates per tile of :func:`_table_rows`: 4,096 records of 64 bytes, a quarter of a 1 MiB L2 cache, leaving
room for the block's heaps and the columns being read."""
_MEASURE_CODE = {Measure.jaccard: JACCARD, Measure.cosine: COSINE, Measure.pearson: PEARSON}


@numba.njit(nogil=True, cache=True, inline="always")
def _push(heap, n, k, key):  # noqa: ANN001, ANN202
    """Add ``key`` to the max-heap ``heap[:n]`` of the ``k`` smallest keys seen; returns the new size. Most
    keys lose one comparison against the root."""
    if n < k:  # sift up
        i = n
        while i > 0:
            parent = (i - 1) >> 1
            if heap[parent] >= key:
                break
            heap[i] = heap[parent]
            i = parent
        heap[i] = key
        return n + 1
    if key < heap[0]:  # replace the root, sift down
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
    return n


@numba.njit(nogil=True, cache=True, inline="always")
def _key(score, rank, bits):  # noqa: ANN001, ANN202
    """:func:`chorus.services.similarity.ranking.ranking_keys` of one score, the same operations in order."""
    q = np.rint(min(max(score, -1.0), 1.0) * SCALE)
    return (np.int64(Q_MAX - q) << bits) | rank


@numba.njit(nogil=True, cache=True)
def _table_rows(  # noqa: ANN202
    start,  # noqa: ANN001
    stop,  # noqa: ANN001
    indptr,  # noqa: ANN001
    indices,  # noqa: ANN001
    t_indptr,  # noqa: ANN001
    t_rows,  # noqa: ANN001
    x,  # noqa: ANN001
    z,  # noqa: ANN001
    z2,  # noqa: ANN001
    tx,  # noqa: ANN001
    tz,  # noqa: ANN001
    label,  # noqa: ANN001
    rank,  # noqa: ANN001
    bits,  # noqa: ANN001
    codes,  # noqa: ANN001
    tile,  # noqa: ANN001
    stamp0,  # noqa: ANN001
    acc,  # noqa: ANN001
    touched,  # noqa: ANN001
    out_keys,  # noqa: ANN001
    out_len,  # noqa: ANN001
):
    """Rows ``start..stop-1``: every candidate with its sums, scored by each measure of ``codes`` and kept in that
    measure's heap of the ``k`` best ranking keys; returns the number of co-occurring pairs scored.

    ``acc[b]`` (by label) is candidate ``b``'s 64-byte record: the stamp of the query that last touched it (query
    ``a`` is ``stamp0 + a - start``), the count and the four sums, and ``b``'s entry count and norm (set once by
    :meth:`KernelInput.scratch`), so a step of ``W`` touches one cache line and scoring a candidate reads that
    same line.

    Candidates are taken ``tile`` labels at a time (cache blocking): for each tile, every row of the block meets
    the candidates of that tile only (each column's entries are sorted by label, and a cursor per entry of the
    block remembers where the next tile starts), then scores them; so the records in use, ``64 × tile`` bytes,
    stay in the core's cache while the whole block goes through them. A pair's terms are still added over the
    common columns in ascending order (all of a pair's terms fall in one tile), so the sums do not change.

    A candidate's key is formed and pushed only when its score can enter the heap: once a heap holds ``k`` keys,
    a score more than 1.5 units of 1e-10 below the root's rounded score cannot (it rounds below it), which is
    checked by products, without the division (and for Pearson on the bound ``min(|C|, γ)/γ``, since a
    correlation is at most 1, before the correlation is computed). The margin is far above the rounding error of
    the products, so only what could not enter is skipped and the heaps end as if every candidate had been
    pushed (the property tests compare them with the numpy path bit for bit)."""
    n_m = codes.shape[0]
    k = out_keys.shape[2]
    n_labels = acc.shape[0]
    want_dot, want_centred = False, False
    for c in codes:
        want_dot = want_dot or c == COSINE
        want_centred = want_centred or c == PEARSON
    r = stop - start
    heaps = np.empty((r, n_m, k), dtype=np.int64)
    floor = np.full((r, n_m), -np.inf)  # a heap root's rounded score in units of 1e-10 once it is full
    size = np.zeros(r, dtype=np.int64)
    base = indptr[start]
    cursor = np.empty(indptr[stop] - base, dtype=np.int64)
    for p in range(base, indptr[stop]):
        cursor[p - base] = t_indptr[indices[p]]
    pairs = 0
    for tile_start in range(0, n_labels, tile):
        tile_stop = min(tile_start + tile, n_labels)
        for a in range(start, stop):
            row = a - start
            la = label[a]
            stamp = stamp0 + row
            m = 0
            for p in range(indptr[a], indptr[a + 1]):
                u = indices[p]
                xa, za, z2a = x[p], z[p], z2[p]
                t = cursor[p - base]
                end = t_indptr[u + 1]
                while t < end:
                    b = t_rows[t]
                    if b >= tile_stop:
                        break
                    rec = acc[b]
                    if rec[0] != stamp:
                        rec[0] = stamp
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
                        zb = tz[t]
                        rec[3] += za * zb
                        rec[4] += z2a
                        rec[5] += zb * zb  # z² of the column's entry: the product numpy forms for the side
                    t += 1
                cursor[p - base] = t
            count_a, norm_a = acc[la, 6], acc[la, 7]
            n = size[row]
            for j in range(m):
                b = touched[j]
                if b == la:
                    continue
                rec = acc[b]
                common = rec[1]
                for s in range(n_m):
                    c = codes[s]
                    lowest = floor[row, s] - 1.5  # a score below lowest / SCALE cannot enter (checked by products)
                    if c == JACCARD:  # measures._jaccard
                        union = max(count_a + rec[6] - common, 1.0)
                        if common * SCALE < lowest * union:
                            continue
                        score = common / union
                    elif c == COSINE:  # measures._cosine
                        den = norm_a * rec[7]
                        if rec[2] * SCALE < lowest * den:
                            continue
                        score = rec[2] / den if den > 0 else 0.0
                    else:  # measures._pearson
                        weight = min(common, PEARSON_SIGNIFICANCE) / PEARSON_SIGNIFICANCE
                        if weight * SCALE < lowest:
                            continue
                        a1, a2 = rec[4], rec[5]
                        r_ab = rec[3] / (np.sqrt(a1) * np.sqrt(a2)) if a1 > 0 and a2 > 0 else 0.0
                        score = r_ab * weight
                    _push(heaps[row, s], n, k, _key(score, rank[b], bits))
                    if n + 1 >= k:
                        floor[row, s] = Q_MAX - (heaps[row, s, 0] >> bits)
                n = min(n + 1, k)
                pairs += 1
            size[row] = n
    for row in range(r):
        n = size[row]
        for s in range(n_m):
            out_keys[s, row, :n] = np.sort(heaps[row, s, :n])
        out_len[row] = n
    return pairs


def warm_up(index: type[np.signedinteger]) -> None:
    """Load (or compile) :func:`_table_rows` for a side whose column indices are ``index`` (see
    :func:`chorus.services.similarity.side.index_dtype`), on empty arrays: a build with several workers runs this
    on a thread of its own while the index is built, so the second or so of loading is not spent in the serial
    part of the build."""
    f, i = np.zeros(0), np.zeros(0, np.int64)
    ptr, cols = np.zeros(1, np.int64), np.zeros(0, index)
    codes = np.arange(3, dtype=np.int64)
    _table_rows(0, 0, ptr, cols, ptr, cols, f, f, f, f, f, i, i, 1, codes, TILE, 0.0, np.zeros((0, 8)), i,
                np.zeros((3, 0, 1), np.int64), i)  # fmt: skip


class KernelInput:
    """What :func:`_table_rows` reads, from ``side``'s layouts: the rows×columns values (``x``, ``z``, ``z2``) and
    the columns×rows layout with its rows *relabelled by popularity* (``label[i]``: row ``i``'s position when rows
    are ordered by descending entry count, ties by index), each column's entries sorted by label (``t_rows``,
    ``tx``, ``tz``: the kernel squares ``tz`` itself), ``rank`` by label; and per thread, the accumulator records
    (:meth:`scratch`).

    Why relabel: a step of ``W`` updates the record of the candidate it meets, and most steps meet the most
    popular rows (every heavy user reviewed them); the smallest labels keep their records in a few contiguous
    pages. The sums do not change: each pair's terms are still added over the common columns in ascending
    order, which relabelling leaves alone; and ranking keys carry the raw-id rank, so the top ``k`` does not
    depend on the order candidates are met."""

    def __init__(self, side: Side, tile: int = TILE) -> None:
        if tile < 1:
            raise InvalidInput(f"tile must be at least 1, got {tile}")
        self.tile = tile
        # the columns×rows layout's arrays themselves, not the side's scipy matrices of them (which a side built
        # for the kernel never forms: two of them are complex, 16 bytes an entry)
        t_indices, t_indptr, _ = side._t_layout
        t_x, t_z = side._right_values["x"](), side._right_values["z"]()
        order = np.argsort(-side.count_int, kind="stable")
        self.label = np.empty(side.n_rows, dtype=np.int64)
        self.label[order] = np.arange(side.n_rows)
        t_label = self.label[t_indices]
        column = np.repeat(np.arange(side.n_cols, dtype=t_indices.dtype), np.diff(t_indptr))
        perm = coo_order(column, t_label)
        del column
        self.left = (side.left["x"], side.left["z"], side.left["z2"])
        self.t_indptr = np.asarray(t_indptr, dtype=np.int64)
        self.t_rows = t_label[perm].astype(side.indices.dtype)
        del t_label
        # the kernel squares z itself (one product, as the side's ``z2i = z² + i`` holds it in its real part),
        # rather than read a third array of 8 bytes an entry
        self.right = (t_x[perm], t_z[perm])
        self.rank = side.rank[order]
        self._stats = (side.count[order], side.norm[order])
        self._local = threading.local()

    def scratch(self, queries: int) -> tuple[float, np.ndarray, np.ndarray]:
        """Stamps for the next ``queries`` queries of this thread (the first returned, then consecutive), its
        accumulator records (float64 (n_rows, 8); slots 6 and 7 the row's count and norm) and its list of
        touched rows; the arrays are made once per thread and build. A record's first slot is the stamp of the
        query that last touched it and stamps are never reused, so the blocks a thread computes share the records
        without clearing them."""
        local = self._local
        if getattr(local, "acc", None) is None:
            local.acc = np.zeros((self.label.shape[0], 8))
            local.acc[:, 0] = -1.0
            local.acc[:, 6], local.acc[:, 7] = self._stats
            local.touched, local.stamp = np.empty(self.label.shape[0], dtype=np.int64), 0.0
        stamp, local.stamp = local.stamp, local.stamp + queries
        return stamp, local.acc, local.touched


def kernel_values(side: Side, tile: int = TILE) -> KernelInput:
    """The input of :func:`table_block` for one build of ``side``'s table (:class:`KernelInput`)."""
    return KernelInput(side, tile)


def table_block(
    side: Side, values: KernelInput, start: int, stop: int, k: int, measures: Iterable[str]
) -> tuple[dict[Measure, tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Top ``k`` neighbours of rows ``start..stop-1`` for each measure, and the number of co-occurring pairs
    scored. The first is what
    :meth:`chorus.services.similarity.side.Side.top_k_block` (the readable reference it is tested against)
    returns, ``{measure: (neighbours int32 (r, k) padded with -1, rounded scores float64 (r, k) padded with 0,
    number of neighbours int32 (r,))}``, through :func:`_table_rows` (on ``values``: :func:`kernel_values`)."""
    specs, _ = plan(tuple(measures))
    codes = np.array([_MEASURE_CODE[spec.measure] for spec in specs], dtype=np.int64)
    r = stop - start
    keys = np.zeros((codes.shape[0], r, k), dtype=np.int64)
    n_nb = np.zeros(r, dtype=np.int64)
    layout = (side.indptr, side.indices, values.t_indptr, values.t_rows, *values.left, *values.right)
    run = (values.label, values.rank, side.rank_bits, codes, values.tile, *values.scratch(r))
    pairs = _table_rows(start, stop, *layout, *run, keys, n_nb)
    pad = np.arange(k)[None, :] >= n_nb[:, None]
    out = {}
    for s, spec in enumerate(specs):
        idx, rounded = decode_keys(keys[s], side.index_of_rank, side.rank_bits)
        out[spec.measure] = (
            np.where(pad, -1, idx).astype(np.int32),
            np.where(pad, 0.0, rounded),
            n_nb.astype(np.int32),
        )
    return out, int(pairs)

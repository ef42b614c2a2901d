"""Offline: the trainer of every ranker (the service never imports this module).

``FITTERS[kind](reviews, params)`` fits a ranker on the user×item training matrix (CSR, star ratings as values)
with one point of ``GRIDS[kind]``; the selection (``chorus.training.ranking.train``) tries every point on a
validation split. Both are derived from the spec table, :data:`chorus.shared.contract.kinds.RANKERS`, whose
``fitter`` paths name the functions here and whose grids they are.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from chorus.services.rating.rankers import (
    MAX_EASE_ITEMS,
    EaseIalsRanker,
    EaseRanker,
    IalsRanker,
    ItemKnnRanker,
    PopularRanker,
    Ranker,
    Rp3BetaRanker,
)
from chorus.services.rating.rankers.ease import ease_input
from chorus.services.rating.rankers.ials import VALUES
from chorus.shared.contract.errors import InvalidInput
from chorus.shared.contract.kinds import RANKERS, KindSpec, blend_defaults, find, resolve
from chorus.shared.workers import current_workers
from chorus.training.ranking.kernels import rank_rows, truncate_rows

Fitter = Callable[[sp.csr_array, dict[str, Any]], Ranker]


def item_counts(reviews: sp.csr_array) -> np.ndarray:
    """int64 (n_items,): training reviews per item (stored entries of each column)."""
    return np.bincount(sp.csr_array(reviews).indices, minlength=reviews.shape[1]).astype(np.int64)


def fit_popular(reviews: sp.csr_array, params: dict[str, Any]) -> PopularRanker:
    """Most popular: the review count of every item."""
    return PopularRanker(item_count=item_counts(reviews), params=dict(params))


def weights_of(reviews: sp.csr_array, values: str) -> sp.csr_array:
    """The user×item matrix a model learns from: 1 per review (``"binary"``) or the star rating (``"rating"``)."""
    if values not in VALUES:
        raise InvalidInput(f"values must be one of {', '.join(VALUES)}, got {values!r}")
    x = sp.csr_array(reviews, dtype=np.float64)
    if values == "binary":
        x = sp.csr_array((np.ones(x.indices.shape[0]), x.indices, x.indptr), shape=x.shape)
    return x


#: Largest catalogue item-kNN is trained for. Its build forms the item×item co-occurrence XᵀX, whose size grows
#: with the square of the catalogue on skewed data: measured on 1M generated reviews (39,829 items) one fit took
#: 360 to 568 s and 9.8 GB here, while at 7,987 items (200k reviews) it takes 7 to 12 s.
MAX_KNN_ITEMS = 10_000


def fit_item_knn(reviews: sp.csr_array, params: dict[str, Any]) -> ItemKnnRanker:
    """Item-kNN: ``params`` ``neighbours`` (int), ``shrink`` (float), ``values`` (``"binary"`` or ``"rating"``: the
    weights the cosine is taken over) and ``normalise`` (``"none"`` or ``"row"``); see :func:`knn_similarity`.

    Raises
    ------
    InvalidInput : more than :data:`MAX_KNN_ITEMS` items (the selection then skips item-kNN with a log line).
    """
    check_knn_size(reviews)
    x = weights_of(reviews, params.get("values", "binary"))
    indptr, indices, data = knn_similarity(
        x, int(params["neighbours"]), float(params["shrink"]), params.get("normalise", "none")
    )
    return ItemKnnRanker(
        item_count=item_counts(reviews), params=dict(params), sim_indptr=indptr, sim_indices=indices, sim_data=data
    )


#: The most items EASE's closed form is taken over: on a larger catalogue it is fitted on the sub-matrix of the
#: :data:`EASE_FIT_ITEMS` items with the most training reviews (ties to the lower index), and the other items' rows
#: and columns of ``B`` are zero (they contribute nothing and score nothing). The inverse costs ``n³``, so this
#: bounds a fit at a few seconds whatever the catalogue. Measured on the 200,000 demo reviews (7,987 items,
#: validation NDCG@10 at λ = 300): 0.1161 over every item, 0.1154 / 0.1159 / 0.1154 / 0.1154 over the top
#: 1,000 / 2,000 / 3,000 / 4,000 items, which hold 60 / 73 / 82 / 88 % of the reviews.
EASE_FIT_ITEMS = 2_000


def ease_items(reviews: sp.csr_array) -> np.ndarray:
    """int64 (m,), ascending: the items EASE is fitted over, every item of a catalogue of at most
    :data:`EASE_FIT_ITEMS`, else that many with the most training reviews (ties to the lower index)."""
    n = reviews.shape[1]
    if n <= EASE_FIT_ITEMS:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.argsort(-item_counts(reviews), kind="stable")[:EASE_FIT_ITEMS]).astype(np.int64)


def check_knn_size(reviews: sp.csr_array, kind: str = "item_knn") -> None:
    """Raises InvalidInput for a catalogue of more than :data:`MAX_KNN_ITEMS` items (``kind`` names the ranker:
    item-kNN and RP3beta both form the item×item co-occurrence)."""
    if reviews.shape[1] > MAX_KNN_ITEMS:
        raise InvalidInput(
            f"{kind}: {reviews.shape[1]:,} items exceed its limit of {MAX_KNN_ITEMS:,} (an item×item co-occurrence)"
        )


def fit_ease(reviews: sp.csr_array, params: dict[str, Any]) -> EaseRanker:
    """EASE^R with ``params["lam"]`` (λ), ``params.get("dropout", 0)`` (p) and ``params.get("input", "binary")``
    on the input matrix ``X`` (:func:`~chorus.services.rating.rankers.ease.ease_input`: 1 per review, or
    √rating) restricted to the columns of :func:`ease_items`: ``G = XᵀX + λ·s·I + p/(1−p)·diagMat(diag(XᵀX))``
    with ``s`` the mean of the squared inputs (1 for binary: a λ means the same for either input),
    ``P = G⁻¹`` (Cholesky, float64), ``B = I − P·diagMat(1/diag(P))``, stored as float32 over those items.

    ``p`` is the dropout of EASE's denoising form (Steck 2020): each item's penalty grows with its own count, so
    the regularisation scales with the data instead of staying fixed while the data grows (a λ chosen on the
    validation split's fewer rows still fits the refit on all of them). ``p = 0`` is plain EASE^R. The √rating
    input lets a history's well-rated items count for more without letting the rating scale dominate: on
    MovieLens 100K it validated best on two seeds of three.

    Raises
    ------
    InvalidInput : more than :data:`MAX_EASE_ITEMS` items, ``lam`` not positive, ``dropout`` outside [0, 1), or an
    unknown ``input``.
    """
    n = reviews.shape[1]
    if n > MAX_EASE_ITEMS:
        raise InvalidInput(f"ease: {n:,} items exceed its limit of {MAX_EASE_ITEMS:,} (a dense n×n matrix)")
    lam = float(params["lam"])
    if not lam > 0:
        raise InvalidInput(f"ease: lam must be positive, got {lam}")
    dropout = float(params.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise InvalidInput(f"ease: dropout must be in [0, 1), got {dropout}")
    items = ease_items(reviews)
    x = sp.csr_array(ease_input(sp.csr_array(reviews), params), dtype=np.float64)
    if items.shape[0] < n:
        x = sp.csr_array(x[:, items])
    b = ease_weights(x, lam, dropout)
    # row-major: a history's score is a sum of rows of B (LAPACK hands back a column-major inverse)
    weights = np.ascontiguousarray(b, dtype=np.float32)
    return EaseRanker(item_count=item_counts(reviews), params=dict(params), items=items, weights=weights)


def ease_weights(x: sp.csr_array, lam: float, dropout: float = 0.0) -> np.ndarray:
    """float64 (m, m): ``B = I − P·diagMat(1/diag(P))`` with ``P = (XᵀX + λ·s·I + p/(1−p)·diagMat(diag(XᵀX)))⁻¹``
    for the input ``x`` (n, m), ``s`` the mean of its squared stored entries (1 for a binary ``x``), and dropout
    ``p``."""
    m = x.shape[1]
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    scale = float(np.mean(np.square(x.data, dtype=np.float64))) if x.nnz else 1.0
    gram[np.diag_indices(m)] += lam * scale + dropout / (1.0 - dropout) * np.diag(gram)
    chol, info = scipy.linalg.lapack.dpotrf(gram, lower=False, overwrite_a=True, clean=True)
    if info != 0:
        raise InvalidInput(f"ease: XᵀX + λI is not positive definite (LAPACK dpotrf info {info})")
    p, info = scipy.linalg.lapack.dpotri(chol, lower=False, overwrite_c=True)
    del chol
    # dpotri fills the upper triangle: mirror it block by block (whole-matrix triu copies cost seconds and n² more
    # memory at this size), then B = −P·diagMat(1/diag(P)) off the diagonal, in place
    mirror_upper(p)
    p /= -np.diag(p).copy()[None, :]
    np.fill_diagonal(p, 0.0)
    return np.asarray(p)


def mirror_upper(a: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of the square ``a`` onto its lower triangle, in place."""
    n = a.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        a[s:e, :s] = a[:s, s:e].T
        square = a[s:e, s:e]
        lower = np.tril_indices(e - s, -1)
        square[lower] = square.T[lower]


def implicit_als(reviews: sp.csr_array, params: dict[str, Any]) -> AlternatingLeastSquares:
    """implicit's CPU ``AlternatingLeastSquares`` (float32) fitted on the confidences ``c = 1 + α·v`` of the
    observed pairs (``v`` per ``params["values"]``: 1 or the rating), as :func:`fit_ials` fits it.

    ``params``: ``factors``, ``regularization`` (λ), ``alpha`` (α), ``iterations``, ``values``; ``seed``
    (implicit's ``random_state``, default 0), ``num_threads`` (default: :func:`chorus.shared.workers.current_workers`,
    so ``chorus train --workers N``; implicit solves each user and item on its own, so the factors do not
    depend on it) and ``use_cg`` (default
    True: implicit's conjugate-gradient solver; False: its exact Cholesky solve). BLAS runs on one thread during
    the fit, as implicit asks (its own threads solve users and items in parallel).
    """
    values = params.get("values", "binary")
    alpha = float(params["alpha"])
    x = weights_of(reviews, values)
    conf = sp.csr_matrix((1.0 + alpha * x.data, x.indices, x.indptr), shape=x.shape, dtype=np.float32)
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # implicit's BLAS-threads warning: held to one here
        model = AlternatingLeastSquares(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=1.0,  # the confidences are in the matrix already
            dtype=np.float32,
            use_cg=bool(params.get("use_cg", True)),
            iterations=int(params["iterations"]),
            calculate_training_loss=False,
            num_threads=int(params.get("num_threads") or current_workers()),
            random_state=int(params.get("seed", 0)),
        )
        model.fit(conf, show_progress=False)
    return model


def fit_ials(reviews: sp.csr_array, params: dict[str, Any]) -> IalsRanker:
    """iALS: :func:`implicit_als`, of which only the item factors are kept (users are folded in when scored,
    see :class:`~chorus.services.rating.rankers.ials.IalsRanker`)."""
    model = implicit_als(reviews, params)
    stored = {
        **params,
        "values": params.get("values", "binary"),
        "alpha": float(params["alpha"]),
        "regularization": float(params["regularization"]),
    }
    return IalsRanker(
        item_count=item_counts(reviews), params=stored, item_factors=np.asarray(model.item_factors, np.float32)
    )


#: The hyperparameters of the blend's EASE part; the rest (but ``w``) are its iALS part's.
EASE_PARAMS = ("lam", "dropout", "input")


def fit_ease_ials(reviews: sp.csr_array, params: dict[str, Any]) -> EaseIalsRanker:
    """The EASE^R + iALS blend: :func:`fit_ease` with ``lam``, ``dropout`` and ``input``, :func:`fit_ials` with the
    other parameters, mixed with weight ``w`` (``params`` holds them all, flat; a part parameter it does not name
    takes that part's first grid point, :func:`~chorus.shared.contract.kinds.blend_defaults`).

    Raises
    ------
    InvalidInput : a catalogue beyond :data:`MAX_EASE_ITEMS`, or ``w`` outside [0, 1].
    """
    full = blend_defaults(find(RANKERS, "ease_ials")) | dict(params)
    ease = fit_ease(reviews, part_params("ease", full))
    ials = fit_ials(reviews, part_params("ials", full))
    return EaseIalsRanker.of(ease, ials, float(full["w"]))


def knn_similarity(
    x: sp.csr_array, neighbours: int, shrink: float, normalise: str = "none", block: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR arrays (indptr int64, indices int32, data float32) of ``S`` for a user×item matrix ``x`` (its
    values are the weights: 1 or the rating).

    ``sim(i, j) = x_iᵀ x_j / (‖x_i‖ ‖x_j‖ + shrink)`` over item columns, ``i ≠ j``; row ``i`` keeps its
    ``neighbours`` largest positive similarities, ties to the lower item index. ``normalise``: ``"none"``, or
    ``"row"`` to divide each row by its sum (each history item casts one vote in all, Deshpande & Karypis 2004).
    Rows of the item×item product are formed ``block`` stored entries at a time, so memory stays bounded.
    The same as :func:`knn_truncate` of :func:`knn_candidates` (which the grid search uses to share the product
    and the sort between its points).
    """
    check_knn(neighbours, shrink, normalise)
    return knn_truncate(knn_candidates(x, shrink, neighbours, block), neighbours, normalise)


def check_knn(neighbours: int, shrink: float, normalise: str) -> None:
    """Raises InvalidInput for ``neighbours`` below 1, a negative ``shrink`` or an unknown ``normalise``."""
    if neighbours < 1:
        raise InvalidInput(f"item_knn: neighbours must be at least 1, got {neighbours}")
    if shrink < 0:
        raise InvalidInput(f"item_knn: shrink must be non-negative, got {shrink}")
    if normalise not in NORMALISATIONS:
        raise InvalidInput(f"item_knn: normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")


@dataclass(frozen=True)
class KnnCandidates:
    """Every item's nearest neighbours, best first: row ``i`` of the CSR-like arrays lists at most ``width``
    items ``j ≠ i`` of positive shrunk cosine, by similarity descending, ties to the lower item index.

    Attributes
    ----------
    indptr : int64 (n_items + 1,)
    indices : int64 (nnz,), neighbour items in rank order.
    data : float64 (nnz,), their similarities.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def knn_candidates(x: sp.csr_array, shrink: float, width: int, block: int = 1 << 22) -> KnnCandidates:
    """The ``width`` nearest neighbours of every item (:class:`KnnCandidates`) for the user×item weights ``x``
    and shrink term ``shrink`` (see :func:`knn_similarity`), ``block`` stored product entries at a time."""
    return knn_candidates_per_shrink(x, [shrink], width, block)[0]


def knn_candidates_per_shrink(
    x: sp.csr_array, shrinks: Sequence[float], width: int, block: int = 1 << 22
) -> list[KnnCandidates]:
    """:func:`knn_candidates` for each of ``shrinks``, from one item×item product (formed a block of rows at a
    time, each block ranked once per shrink)."""
    x = sp.csr_array(x, dtype=np.float64)
    norm = np.sqrt(np.asarray((x.multiply(x)).sum(axis=0)).ravel())

    def shrunk_cosine(shrink: float) -> Similarity:
        return lambda g, rows, cols: g / (norm[rows] * norm[cols] + shrink)

    return ranked_products(x, x, [shrunk_cosine(float(s)) for s in shrinks], width, block)


#: ``sim(g, rows, cols)``: the similarities of item pairs ``(rows, cols)`` (int64 (m,)) from their entries ``g``
#: (float64 (m,)) of an item×item product.
Similarity = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def ranked_products(
    left: sp.csr_array, x: sp.csr_array, similarities: Sequence[Similarity], width: int, block: int = 1 << 22
) -> list[KnnCandidates]:
    """Per ``similarities[s]``, the ``width`` best neighbours of every item (:class:`KnnCandidates`) by that
    similarity of the off-diagonal entries of ``leftᵀ x`` (both user×item, float64), positive ones only; the
    product is formed ``block`` stored entries at a time and each block ranked once per similarity."""
    n = x.shape[1]
    lt = sp.csr_array(sp.csr_array(left, dtype=np.float64).T)
    x = sp.csr_array(x, dtype=np.float64)
    indptr = [np.zeros(n + 1, dtype=np.int64) for _ in similarities]
    parts_i: list[list[np.ndarray]] = [[] for _ in similarities]
    parts_d: list[list[np.ndarray]] = [[] for _ in similarities]
    # rows per block from a rough estimate of the product's density
    per_row = max(1.0, float(x.nnz) ** 2 / max(1, x.shape[0]) / max(1, n))
    step = max(1, int(block / per_row))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        g = sp.csr_array(lt[lo:hi] @ x)
        g.sum_duplicates()
        rows0 = np.repeat(np.arange(lo, hi), np.diff(g.indptr))
        cols0 = g.indices.astype(np.int64)
        off = cols0 != rows0
        rows0, cols0, g_data = rows0[off], cols0[off], g.data[off]
        # the block's rows in CSR form (columns still ascending in each row), then each row ranked
        every = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows0 - lo, minlength=hi - lo), out=every[1:])
        for s, similarity in enumerate(similarities):
            sim = similarity(g_data, rows0, cols0)
            keep = sim > 0
            cols, ptr = cols0, every
            if not keep.all():  # co-occurrence entries are positive: most blocks keep every one, uncopied
                cols, sim = cols0[keep], sim[keep]
                ptr = np.zeros(hi - lo + 1, dtype=np.int64)
                np.cumsum(np.bincount(rows0[keep] - lo, minlength=hi - lo), out=ptr[1:])
            counts, picks = rank_rows(ptr, sim, width)
            indptr[s][lo + 1 : hi + 1] = np.diff(counts)
            parts_i[s].append(cols[picks])
            parts_d[s].append(sim[picks])
    out = []
    for s in range(len(similarities)):
        np.cumsum(indptr[s], out=indptr[s])
        indices = np.concatenate(parts_i[s]) if parts_i[s] else np.zeros(0, dtype=np.int64)
        data = np.concatenate(parts_d[s]) if parts_d[s] else np.zeros(0, dtype=np.float64)
        out.append(KnnCandidates(indptr[s], indices, data))
    return out


def rp3_candidates_per_beta(
    reviews: sp.csr_array, alpha: float, betas: Sequence[float], width: int
) -> list[KnnCandidates]:
    """RP3beta's ``width`` best neighbours of every item for each of ``betas``, from one product: ``S[i, j] =
    pop_i^−α · pop_j^−β · Σ_u |u|^−α x_ui x_uj`` over the binary ``reviews`` (the walk's probabilities to the
    power α, arrivals divided by popularity to the power β; :class:`~chorus.services.rating.rankers.Rp3BetaRanker`)."""
    x = weights_of(reviews, "binary")
    degree = np.maximum(np.diff(x.indptr), 1).astype(np.float64)
    left = sp.csr_array((np.repeat(degree**-alpha, np.diff(x.indptr)), x.indices, x.indptr), shape=x.shape)
    popularity = np.maximum(item_counts(reviews), 1).astype(np.float64)
    out_weight = popularity**-alpha

    def walk(beta: float) -> Similarity:
        arrive = popularity**-beta
        return lambda g, rows, cols: g * out_weight[rows] * arrive[cols]

    return ranked_products(left, x, [walk(float(b)) for b in betas], width)


def check_rp3(alpha: float, beta: float, neighbours: int) -> None:
    """Raises InvalidInput for a negative ``alpha`` or ``beta`` or ``neighbours`` below 1."""
    if not (alpha >= 0 and beta >= 0):
        raise InvalidInput(f"rp3beta: alpha and beta must be non-negative, got {alpha} and {beta}")
    if neighbours < 1:
        raise InvalidInput(f"rp3beta: neighbours must be at least 1, got {neighbours}")


def fit_rp3beta(reviews: sp.csr_array, params: dict[str, Any]) -> Rp3BetaRanker:
    """RP3beta: ``params`` ``alpha``, ``beta`` (floats) and ``neighbours`` (int); see
    :func:`rp3_candidates_per_beta`. Each row keeps its ``neighbours`` largest entries, ties to the lower item.

    Raises
    ------
    InvalidInput : bad params, or more than :data:`MAX_KNN_ITEMS` items (the selection then skips the kind).
    """
    alpha, beta, neighbours = float(params["alpha"]), float(params["beta"]), int(params["neighbours"])
    check_rp3(alpha, beta, neighbours)
    check_knn_size(reviews, "rp3beta")
    (candidates,) = rp3_candidates_per_beta(reviews, alpha, [beta], neighbours)
    indptr, indices, data = knn_truncate(candidates, neighbours)
    return Rp3BetaRanker(
        item_count=item_counts(reviews), params=dict(params), sim_indptr=indptr, sim_indices=indices, sim_data=data
    )


def knn_truncate(
    candidates: KnnCandidates, neighbours: int, normalise: str = "none"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR arrays of :func:`knn_similarity` from ``candidates`` at least ``neighbours`` wide: each row's
    first ``neighbours`` candidates, divided by their sum with ``normalise="row"``, in column order."""
    indptr, cols, sim = truncate_rows(
        candidates.indptr, candidates.indices, candidates.data, int(neighbours), normalise == "row"
    )
    return indptr, cols, sim


#: The row normalisations of ``S`` (see :func:`knn_similarity`).
NORMALISATIONS = ("none", "row")


def fitter_of(spec: KindSpec) -> Fitter:
    """The trainer :attr:`KindSpec.fitter` names, imported (for a ranker, served or not).

    Raises
    ------
    TypeError : a spec of no ranker, or a path that names something not callable.
    """
    named = resolve(spec.fitter) if spec.family == "ranker" and spec.fitter else None
    if not callable(named):
        raise TypeError(f"kind {spec.name!r}: {spec.fitter!r} names no ranker trainer")
    return cast(Fitter, named)


#: kind -> trainer of every served ranker of :data:`~chorus.shared.contract.kinds.RANKERS`, in its order: the kinds
#: the selection tries, and its tie-break order.
FITTERS: dict[str, Fitter] = {spec.name: fitter_of(spec) for spec in RANKERS if spec.served}

#: kind -> the grid of every served ranker (its spec's, as fresh dicts), likeliest points first.
GRIDS: dict[str, list[dict[str, Any]]] = {spec.name: [dict(p) for p in spec.grid] for spec in RANKERS if spec.served}

#: blend kind -> the kinds it combines (:attr:`~chorus.shared.contract.kinds.KindSpec.parts`), for every served blend.
PARTS: dict[str, tuple[str, ...]] = {spec.name: spec.parts for spec in RANKERS if spec.served and spec.parts}


def part_params(part: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params of a blend's point that belong to its ``part``: EASE's :data:`EASE_PARAMS`, the rest but the
    blend's ``w`` to iALS."""
    if part == "ease":
        return {k: v for k, v in params.items() if k in EASE_PARAMS}
    return {k: v for k, v in params.items() if k not in (*EASE_PARAMS, "w")}


def mixes_chosen_parts(kind: str, chosen: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether the blend ``kind``'s params (``chosen[kind]``) hold, for each of its parts, exactly the params
    ``chosen`` for that part (kind -> params), so that the blend can be mixed from those parts' fits."""
    return all(
        part in chosen and part_params(part, chosen[part]) == part_params(part, chosen[kind]) for part in PARTS[kind]
    )


def compose(kind: str, parts: Sequence[Ranker], params: Mapping[str, Any]) -> Ranker:
    """The blend ``kind`` of its fitted ``parts`` (in :data:`PARTS` order) at the point ``params``: no fit."""
    if kind != "ease_ials":
        raise InvalidInput(f"{kind} is no blend of rankers")
    ease, ials = parts
    return EaseIalsRanker.of(cast(EaseRanker, ease), cast(IalsRanker, ials), float(params["w"]))

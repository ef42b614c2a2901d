"""The similarity index: what the similarity service answers with.

Ratings held as item×user and user×item CSR matrices (:class:`chorus.services.similarity.side.Side`), with per-row
statistics and an optional precomputed item neighbour table. :class:`SimilarityIndex` validates arguments and
answers similar items and users (:mod:`~chorus.services.similarity.measures` defines the scores,
:mod:`~chorus.services.similarity.side` computes them, :mod:`~chorus.services.similarity.ranking` ranks them),
"because you liked" recommendations (:mod:`~chorus.services.similarity.recommend`) and the similarity-weighted
rating heuristic (:mod:`~chorus.services.similarity.predict`).

Nothing here imports FastAPI or pydantic; errors are :mod:`chorus.shared.contract.errors` classes so a service maps
them to HTTP statuses without translation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.layout import CORE_ARRAYS, table_array_names, tabled_measures, validate_arrays
from chorus.services.similarity.measures import measure_spec
from chorus.services.similarity.predict import Predictions, predict
from chorus.services.similarity.ranking import rank_or_identity
from chorus.services.similarity.recommend import Recommendations, recommend
from chorus.services.similarity.side import Side
from chorus.services.similarity.sparse import csr_layout, row_stats
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.contract.names import Measure, check_k
from chorus.shared.indices import check_indices
from chorus.shared.workers import current_workers, map_threads


def check_min_common(m: int) -> int:
    """``min_common`` as an int of at least 1; :class:`InvalidInput` otherwise."""
    if int(m) < 1:
        raise InvalidInput(f"min_common must be at least 1, got {m}")
    return int(m)


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
    items, users : Side
        The item×user and user×item orientations of the ratings.
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
        self._arrays = {name: a[name] for name in CORE_ARRAYS}
        self.item_count, self.item_mean, self.item_norm = (
            np.asarray(a[f"item_{s}"]) for s in ("count", "mean", "norm")
        )
        self.user_count, self.user_mean, self.user_norm = (
            np.asarray(a[f"user_{s}"]) for s in ("count", "mean", "norm")
        )
        self.item_rank = np.asarray(a["item_rank"], dtype=np.int64)
        self.user_rank = np.asarray(a["user_rank"], dtype=np.int64)
        item_side = ("item", "item", "user", self.item_count, self.item_mean, self.item_norm, self.item_rank)
        user_side = ("user", "user", "item", self.user_count, self.user_mean, self.user_norm, self.user_rank)

        def side(spec: tuple[str, str, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> Side:
            name, rows, cols, count, mean, norm, rank = spec
            layouts = (a[f"{rows}_indptr"], a[f"{rows}_{cols}s"], a[f"{rows}_ratings"])
            t_layouts = (a[f"{cols}_indptr"], a[f"{cols}_{rows}s"], a[f"{cols}_ratings"])
            return Side(name, *layouts, *t_layouts, count, mean, norm, rank)

        # the two orientations are independent numpy work (most of it outside the GIL): on two threads
        self.items, self.users = map_threads(side, [item_side, user_side], current_workers())
        nnz = int(self.items.indices.shape[0])
        self.global_mean = float(np.sum(self.items.ratings) / nnz) if nnz else 0.0
        self._table: dict[Measure, tuple[np.ndarray, np.ndarray]] = {}
        self._n_neighbors = np.zeros(0, dtype=np.int32)
        self.table_k = 0

    # -- construction and persistence ---------------------------------------------------------------------

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
            vocabulary, as ``chorus.shared.data`` builds it). See :func:`chorus.services.similarity.ranking.id_rank`.
        config : SimilarityConfig, optional

        Raises
        ------
        InvalidInput : mismatched lengths, indices out of range, a repeated pair, or non-finite ratings.
        """
        arrays = cls.index_arrays(user, item, rating, n_users, n_items, item_rank=item_rank, user_rank=user_rank)
        return cls(arrays, config)

    @staticmethod
    def index_arrays(
        user: np.ndarray,
        item: np.ndarray,
        rating: np.ndarray,
        n_users: int,
        n_items: int,
        *,
        item_rank: np.ndarray | None = None,
        user_rank: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The arrays :meth:`from_arrays` indexes (those of :meth:`to_arrays` without a table), without forming
        the index itself (an offline build that needs one side of it). Arguments and errors as
        :meth:`from_arrays`."""
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

        def layout(spec: tuple[np.ndarray, np.ndarray, int]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
            rows, cols, n_rows = spec
            csr = csr_layout(rows, cols, rating, n_rows)
            return csr, row_stats(csr[0], csr[2])

        # the two orientations on two threads (the sorts release the GIL)
        by_item, by_user = map_threads(layout, [(item, user, n_items), (user, item, n_users)], current_workers())
        (i_indptr, i_users, i_ratings, i_rows), (ic, im, inorm) = by_item
        (u_indptr, u_items, u_ratings, _), (uc, um, unorm) = by_user
        if n > 1 and np.any((i_rows[1:] == i_rows[:-1]) & (i_users[1:] == i_users[:-1])):
            raise InvalidInput("a (user, item) pair occurs more than once")
        arrays = {
            "shape": np.array([n_users, n_items], dtype=np.int64),
            "item_indptr": i_indptr,
            "item_users": i_users,
            "item_ratings": i_ratings,
            "user_indptr": u_indptr,
            "user_items": u_items,
            "user_ratings": u_ratings,
            "item_rank": rank_or_identity(item_rank, n_items, "item_rank"),
            "user_rank": rank_or_identity(user_rank, n_users, "user_rank"),
            "item_count": ic,
            "item_mean": im,
            "item_norm": inorm,
            "user_count": uc,
            "user_mean": um,
            "user_norm": unorm,
        }
        return arrays

    @classmethod
    def from_saved(cls, arrays: Mapping[str, np.ndarray], config: SimilarityConfig | None = None) -> SimilarityIndex:
        """Rebuild from :meth:`to_arrays` output (arrays may be read-only memory maps; none is modified).

        Only cheap O(nnz) steps run: validation, the centred values for Pearson, the CSR wrappers. The neighbour
        table is attached when its arrays are present (layout in :mod:`chorus.services.similarity.layout`).

        Raises
        ------
        ArtifactError : a missing array, or arrays that do not fit together.
        """
        validate_arrays(arrays)
        index = cls(arrays, config)
        measures = tabled_measures(arrays)
        if measures:
            index.attach_table({n: arrays[n] for n in table_array_names(measures)})
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
        """Use a neighbour table (``n_neighbors``, ``neighbors_<m>``, ``scores_<m>``; see
        :func:`chorus.services.similarity.layout.table_array_names`).

        Raises
        ------
        ArtifactError : shapes that do not match the index.
        """
        n_nb = np.asarray(table["n_neighbors"])
        if n_nb.shape != (self.n_items,):
            raise ArtifactError(f"n_neighbors has shape {n_nb.shape}, expected ({self.n_items},)")
        tab, k = {}, None
        for m in tabled_measures(table):
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
        if not tab or k is None:
            raise ArtifactError("neighbour table without any measure")
        if n_nb.size and (n_nb.min() < 0 or n_nb.max() > k):
            raise ArtifactError("n_neighbors out of range")
        filled = np.arange(k) < n_nb[:, None]  # (n_items, K): the entries a query reads
        for m, (nb, _) in tab.items():
            held = nb[filled]
            if held.size and (held.min() < 0 or held.max() >= self.n_items):
                raise ArtifactError(f"neighbour table for {m}: an item index outside 0..{self.n_items - 1}")
        self._table, self._n_neighbors, self.table_k = tab, n_nb, int(k)

    @property
    def has_table(self) -> bool:
        """Whether a neighbour table is attached."""
        return bool(self._table)

    # -- similar items / users ----------------------------------------------------------------------------

    def similar_items(
        self,
        i: int,
        k: int = 10,
        measure: str = Measure.jaccard,
        min_common: int = 1,
        *,
        use_table: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to item ``i``.

        Returns (int64 indices (n,), float64 scores rounded to 10 places (n,)), n ≤ k, best first; ties by raw id.
        ``use_table``: None reads the table when it can answer (``k <= table_k``, ``min_common == 1``),
        False forces the online computation, True requires the table. Both give identical answers.
        """
        measure = measure_spec(measure).measure
        k, min_common = check_k(k), check_min_common(min_common)
        can = measure in self._table and k <= self.table_k and min_common == 1
        if use_table and not can:
            raise InvalidInput(
                f"the neighbour table cannot answer k={k}, measure={measure.value!r}, min_common={min_common}"
            )
        if can and use_table is not False:
            i = self.items.check_row(i)
            nb, sc = self._table[measure]
            n = min(k, int(self._n_neighbors[i]))
            return nb[i, :n].astype(np.int64), np.array(sc[i, :n], dtype=np.float64)
        return self.items.most_similar(i, k, measure, min_common)

    def similar_users(
        self, u: int, k: int = 10, measure: str = Measure.jaccard, min_common: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users most similar to user ``u`` (computed online). Same conventions as
        :meth:`similar_items`."""
        measure = measure_spec(measure).measure
        return self.users.most_similar(u, check_k(k), measure, check_min_common(min_common))

    def item_similarity(self, i: npt.ArrayLike, j: npt.ArrayLike, measure: str = Measure.jaccard) -> np.ndarray:
        """sim(i[p], j[p]) (raw, not rounded). ``i, j``: int (n,) valid item indices -> float64 (n,)."""
        i, j = check_indices(i, self.n_items, "item"), check_indices(j, self.n_items, "item")
        return self.items.pair_scores(i, j, measure, self.config.pair_chunk)

    def user_similarity(self, u: npt.ArrayLike, v: npt.ArrayLike, measure: str = Measure.jaccard) -> np.ndarray:
        """sim(u[p], v[p]) between users (raw). int (n,) -> float64 (n,)."""
        u, v = check_indices(u, self.n_users, "user"), check_indices(v, self.n_users, "user")
        return self.users.pair_scores(u, v, measure, self.config.pair_chunk)

    def user_items(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """Items rated by user ``u`` (ascending int32 view) and the ratings (float64 view)."""
        return self.users.row_entries(u)

    # -- recommendations and predictions ------------------------------------------------------------------

    def table_of(self, measure: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The neighbour table of ``measure`` (neighbours int32 (n_items, K) -1 padded, rounded scores float64
        (n_items, K)), or None without one."""
        return self._table.get(measure_spec(measure).measure)

    def neighbor_counts(self) -> np.ndarray:
        """Neighbours stored per item in the table, int32 (n_items,) (empty without a table)."""
        return self._n_neighbors

    def recommend(
        self, u: int, k: int = 10, measure: str | None = None, exclude: np.ndarray | None = None
    ) -> Recommendations:
        """Items for user ``u`` from the items they liked (rated at least ``config.like_threshold``), by summed
        similarity (``config.recommend_measure`` by default); see :mod:`chorus.services.similarity.recommend`
        (Jaccard and Pearson sum over the neighbour table when one is attached). ``exclude``: items never
        recommended besides the rated ones."""
        spec = measure_spec(self.config.recommend_measure if measure is None else measure)
        k = check_k(k)
        rated, ratings = self.user_items(u)
        return recommend(
            self.items,
            rated,
            ratings,
            k,
            spec.measure,
            like_threshold=self.config.like_threshold,
            block_nnz=self.config.block_nnz,
            table=self._table.get(spec.measure),
            exclude=exclude,
        )

    def predict(
        self,
        users: npt.ArrayLike,
        items: npt.ArrayLike,
        measure: str | None = None,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> Predictions:
        """The similarity-weighted rating heuristic (:mod:`chorus.services.similarity.predict`), with
        ``config.predict_measure`` by default.

        ``users, items``: int (n,) (or scalars); -1 marks an unknown user or item. Where the user or item is
        unknown or the denominator is 0, the rating is the global mean and ``impossible`` is True. ``low``,
        ``high``: the rating scale, to clip every prediction to (not clipped when omitted).

        Raises
        ------
        InvalidInput : ``users`` and ``items`` of different shapes.
        NotFound : an index below -1 or beyond the last user/item.
        """
        spec = measure_spec(self.config.predict_measure if measure is None else measure)
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        if users.shape != items.shape or users.ndim != 1:
            raise InvalidInput(f"users and items must be 1-d and of equal length ({users.shape}, {items.shape})")
        users = check_indices(users, self.n_users, "user", unknown_ok=True)
        items = check_indices(items, self.n_items, "item", unknown_ok=True)
        chunk = self.config.pair_chunk
        return predict(
            self.users,
            lambda i, j: self.items.pair_scores(i, j, spec.measure, chunk),
            users,
            items,
            global_mean=self.global_mean,
            pair_chunk=self.config.pair_chunk,
            low=low,
            high=high,
        )

"""The user x item matrix of a set of reviews: the one builder that serving, training and evaluation share."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp


def user_item_matrix(
    user: npt.ArrayLike,
    item: npt.ArrayLike,
    n_users: int,
    n_items: int,
    values: npt.ArrayLike | None = None,
    dtype: npt.DTypeLike = np.float64,
) -> sp.csr_array:
    """The reviews as a canonical CSR array (n_users, n_items): sorted column indices, one entry per (user, item).

    Parameters
    ----------
    user, item : array_like of int, shape (n,)
        Row and column index of each review.
    values : array_like of float, shape (n,), optional
        Each review's value (its star rating); entries of a repeated pair are summed (the loaders keep one review
        per pair). Without values the matrix is the pattern of who reviewed what: every entry is 1, a repeated pair
        too.
    dtype : the entries' dtype (float64 by default; the rating service keeps float32 stars).
    """
    rows = np.asarray(user, dtype=np.int64)
    cols = np.asarray(item, dtype=np.int64)
    data = np.ones(rows.shape[0], dtype=dtype) if values is None else np.asarray(values, dtype=dtype)
    m = sp.csr_array((data, (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    if values is None:
        m.data[:] = 1
    return m

"""The one check that a dense index names a row that exists, for every core that takes indices.

Services map raw ids to dense indices through the catalog (``-1`` for an id the vocabulary does not know); the
cores take those indices and check them here, so a bad index is a clear 404, never an ``IndexError`` or a
silently wrapped negative index.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from chorus.shared.contract.errors import InvalidInput, NotFound


def check_index(i: int, n: int, what: str) -> int:
    """``i`` as an int, checked to be a valid index of ``n`` rows named ``what`` ("item", "user").

    Raises
    ------
    NotFound : outside ``0..n-1``.
    """
    i = int(i)
    if not 0 <= i < n:
        raise _unknown(i, n, what)
    return i


def check_indices(idx: npt.ArrayLike, n: int, what: str, *, unknown_ok: bool = False) -> np.ndarray:
    """``idx`` as int64 of at least one dimension (a scalar becomes (1,)), checked to lie in ``0..n-1``.

    Parameters
    ----------
    idx : int array of any shape, or an int
    n : int
        Number of rows.
    what : str
        What the rows are ("item", "user"), for the message.
    unknown_ok : bool
        Also accept -1, meaning an id the vocabulary does not know.

    Raises
    ------
    InvalidInput : indices that are not integers.
    NotFound : an index out of range.
    """
    arr = np.atleast_1d(np.asarray(idx))
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInput(f"{what} indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    low = -1 if unknown_ok else 0
    if arr.size and (arr.min() < low or arr.max() >= n):
        bad = int(arr[(arr < low) | (arr >= n)][0])
        raise _unknown(bad, n, what, "; -1 means unknown" if unknown_ok else "")
    return arr


def _unknown(index: int, n: int, what: str, hint: str = "") -> NotFound:
    return NotFound(f"unknown {what} index {index} (there are {n} {what}s{hint})")

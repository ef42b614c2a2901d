"""What the rating service serves for one artifact version: the model, the catalog, each user's reviewed items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from chorus.services.rating.models import RatingModel
from chorus.services.rating.persistence import load_component
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.errors import ArtifactError


@dataclass
class RatingService:
    """One served version.

    Attributes
    ----------
    version : str
    model : RatingModel
        The ``rating`` component's model.
    catalog : Catalog
        Raw ids and titles.
    reviewed_by : scipy.sparse.csr_array
        int8 (n_users, n_items), the pattern of every review in the version's data (what recommendations
        exclude), from :func:`reviewed_matrix`.
    """

    version: str
    model: RatingModel
    catalog: Catalog
    reviewed_by: sp.csr_array

    def reviewed(self, u: int) -> np.ndarray:
        """The items user ``u`` reviewed: int32 (m,)."""
        m = self.reviewed_by
        return m.indices[m.indptr[u] : m.indptr[u + 1]]


def reviewed_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> sp.csr_array:
    """The user×item CSR pattern of reviews, int8 ones (duplicates summed), for ``user, item`` int (n,). The items
    user ``u`` reviewed, what ``RatingModel.recommend`` takes as ``exclude``, are
    ``m.indices[m.indptr[u]:m.indptr[u + 1]]``."""
    m = sp.csr_array((np.ones(len(user), np.int8), (np.asarray(user), np.asarray(item))), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def load_service(version: Version) -> RatingService:
    """The served state of a verified version with the ``data`` and ``rating`` components.

    Raises
    ------
    ArtifactError : a bad rating component, or one whose sizes differ from the data's.
    """
    catalog, ratings = Catalog.from_version(version)
    model = load_component(version)
    if model.n_items != catalog.n_items or model.n_users != catalog.n_users:
        raise ArtifactError(
            f"version {version.name}: the rating model has {model.n_users} users and "
            f"{model.n_items} items, the data {catalog.n_users} and {catalog.n_items}"
        )
    reviewed = reviewed_matrix(ratings.user, ratings.item, catalog.n_users, catalog.n_items)
    return RatingService(version.name, model, catalog, reviewed)

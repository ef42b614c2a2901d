"""The rating service: predicted star ratings and top-N recommendations from the ``rating`` component (a latent
factor model, or the bias-only model where factors did not beat it on validation data).

Run: ``CHORUS_ARTIFACTS=DIR uvicorn chorus.services.rating.app:create_app --factory --port 8002``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from chorus.services.rating.core import RatingModel, reviewed_matrix
from chorus.services.rating.settings import Settings
from chorus.services.rating.train import load_component
from chorus.shared.artifacts import Version
from chorus.shared.catalog import Catalog
from chorus.shared.errors import ArtifactError
from chorus.shared.serving import create_service_app
from fastapi import FastAPI


@dataclass
class RatingService:
    """What one served version holds: the model, the catalog, and each user's reviewed items (to exclude)."""

    version: str
    model: RatingModel
    catalog: Catalog
    reviewed_by: sp.csr_array  # user×item pattern of every review in the version's data

    def reviewed(self, u: int) -> np.ndarray:
        m = self.reviewed_by
        return m.indices[m.indptr[u] : m.indptr[u + 1]]


def load_service(version: Version) -> RatingService:
    catalog, ratings = Catalog.from_version(version)
    model = load_component(version)
    if model.n_items != catalog.n_items or model.n_users != catalog.n_users:
        raise ArtifactError(
            f"version {version.name}: the rating model has {model.n_users} users and "
            f"{model.n_items} items, the data {catalog.n_users} and {catalog.n_items}"
        )
    reviewed = reviewed_matrix(ratings.user, ratings.item, catalog.n_users, catalog.n_items)
    return RatingService(version.name, model, catalog, reviewed)


def create_app(settings: Settings | None = None) -> FastAPI:
    from chorus.services.rating.api import router

    settings = settings or Settings()
    return create_service_app(
        title="Chorus rating service",
        description="Predicted star ratings from a latent factor model f(u,i) = α + β_u + β_i + γ_u·γ_i "
        "(selected on validation data, measured on test data), and top-N recommendations among "
        "items a user has not reviewed.",
        settings=settings,
        build=load_service,
        components=("data", "rating"),
        routers=[router],
    )

"""The rating service: predicted star ratings and top-N recommendations from the ``rating`` component (a latent
factor model, or the bias-only model where factors did not beat it on validation data).

Run: ``CHORUS_ARTIFACTS=DIR uvicorn services.rating.app:create_app --factory --port 8002``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI

from shared.artifacts import Version
from shared.catalog import Catalog
from shared.errors import ArtifactError
from shared.serving import create_service_app

from .core import RatingModel
from .settings import Settings
from .train import load_component


@dataclass
class RatingService:
    """What one served version holds: the model, the catalog, and each user's reviewed items (to exclude)."""

    version: str
    model: RatingModel
    catalog: Catalog
    reviewed_indptr: np.ndarray  # int64 (n_users + 1,)
    reviewed_items: np.ndarray  # int32 (n_ratings,), items of user u at [indptr[u]:indptr[u+1]]

    def reviewed(self, u: int) -> np.ndarray:
        return self.reviewed_items[self.reviewed_indptr[u]:self.reviewed_indptr[u + 1]]


def load_service(version: Version) -> RatingService:
    catalog, ratings = Catalog.from_version(version)
    model = load_component(version)
    if model.n_items != catalog.n_items or model.n_users != catalog.n_users:
        raise ArtifactError(f"version {version.name}: the rating model has {model.n_users} users and "
                            f"{model.n_items} items, the data {catalog.n_users} and {catalog.n_items}")
    order = np.argsort(ratings.user, kind="stable")
    indptr = np.zeros(catalog.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(ratings.user, minlength=catalog.n_users), out=indptr[1:])
    return RatingService(version.name, model, catalog, indptr, np.asarray(ratings.item)[order])


def create_app(settings: Settings | None = None) -> FastAPI:
    from .api import router

    settings = settings or Settings()
    return create_service_app(
        title="Chorus rating service",
        description="Predicted star ratings from a latent factor model f(u,i) = α + β_u + β_i + γ_u·γ_i "
                    "(selected on validation data, measured on test data), and top-N recommendations among "
                    "items a user has not reviewed.",
        settings=settings, build=load_service, components=("data", "rating"), routers=[router],
    )

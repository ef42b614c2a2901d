"""Fixtures of the similarity tests: the hand-computed example and the real Amazon 5-core file."""

from __future__ import annotations

import pytest

from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.ranking import id_rank
from tests.conftest import real_file
from tests.similarity.reference import HAND, Reference, make_index


@pytest.fixture
def hand() -> SimilarityIndex:
    return make_index(HAND, 5, 5)


@pytest.fixture(scope="session")
def amazon():
    """(index, reference, ratings) of the Amazon musical instruments 5-core file, with raw-id ranks."""
    from chorus.shared.data import load_ratings

    path = real_file("amazon-musical-instruments-5core-2014", "reviews_Musical_Instruments_5.json.gz")
    r = load_ratings(path, progress=False)
    ratings = {(int(u), int(i)): float(x) for u, i, x in zip(r.user, r.item, r.rating, strict=True)}
    index = SimilarityIndex.from_arrays(
        r.user, r.item, r.rating, r.n_users, r.n_items, item_rank=id_rank(r.item_ids), user_rank=id_rank(r.user_ids)
    )
    return index, Reference(ratings, r.n_users, r.n_items, id_rank(r.item_ids), id_rank(r.user_ids)), r

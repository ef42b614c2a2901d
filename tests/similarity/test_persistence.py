"""The artifact component: written, loaded back with identical answers, and refused when its format
or its arrays do not fit."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.persistence import COMPONENT, component_meta, load_component, write_component
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import build_similarity
from tests.similarity.reference import random_ratings


def write_version(root, arrays, meta):
    with VersionWriter(root) as writer:
        write_component(writer, arrays, meta)
        return writer.commit()


def test_component_round_trip_through_the_artifact_store(tmp_path):
    user, item, rating, nu, ni = random_ratings(3)
    config = SimilarityConfig(table_k=6, like_threshold=5.0)
    result = build_similarity(user, item, rating, nu, ni, K=6, config=config)
    version = write_version(tmp_path, result.arrays, component_meta(config, 6, tuple(Measure), result.stats))
    opened = ArtifactStore(tmp_path).open(version)
    index = load_component(opened)
    assert index.table_k == 6 and index.config.like_threshold == 5.0
    assert not opened.array(COMPONENT, "item_users").flags.writeable  # read-only
    fresh = SimilarityIndex.from_arrays(user, item, rating, nu, ni)
    for m in Measure:
        for i in range(ni):
            t, o = index.similar_items(i, 6, m), fresh.similar_items(i, 6, m)
            np.testing.assert_array_equal(t[0], o[0])
            np.testing.assert_array_equal(t[1], o[1])
    u = np.arange(nu)
    np.testing.assert_array_equal(index.predict(u, u % ni).rating, fresh.predict(u, u % ni).rating)


def test_load_component_refuses_another_format(tmp_path):
    user, item, rating, nu, ni = random_ratings(4)
    result = build_similarity(user, item, rating, nu, ni, K=3, trace_memory=False)
    meta = component_meta(SimilarityConfig(table_k=3), 3, tuple(Measure), result.stats)
    meta["hyperparameters"]["format"] = 99
    version = write_version(tmp_path, result.arrays, meta)
    with pytest.raises(ArtifactError, match="format 99"):
        load_component(ArtifactStore(tmp_path).open(version))


def test_inconsistent_arrays_are_refused():
    user, item, rating, nu, ni = random_ratings(5)
    arrays = dict(build_similarity(user, item, rating, nu, ni, K=3, trace_memory=False).arrays)
    bad = dict(arrays, item_indptr=arrays["item_indptr"][:-1])
    with pytest.raises(ArtifactError, match="item CSR"):
        SimilarityIndex.from_saved(bad)
    bad = dict(arrays, neighbors_jaccard=arrays["neighbors_jaccard"][:, :2])
    with pytest.raises(ArtifactError, match="neighbour table"):
        SimilarityIndex.from_saved(bad)
    with pytest.raises(ArtifactError, match="missing"):
        SimilarityIndex.from_saved({k: v for k, v in arrays.items() if k != "user_mean"})


def test_a_neighbour_table_naming_an_item_that_does_not_exist_is_refused():
    user, item, rating, nu, ni = random_ratings(6)
    arrays = dict(build_similarity(user, item, rating, nu, ni, K=3, trace_memory=False).arrays)
    row = int(np.flatnonzero(arrays["n_neighbors"] > 0)[0])
    for wrong in (ni, -1):
        neighbours = arrays["neighbors_cosine"].copy()
        neighbours[row, 0] = wrong
        with pytest.raises(ArtifactError, match=rf"neighbour table for cosine: an item index outside 0..{ni - 1}"):
            SimilarityIndex.from_saved(dict(arrays, neighbors_cosine=neighbours))


def test_a_format_1_component_answers_pearson_online_with_significance_weighting(tmp_path):
    user, item, rating, nu, ni = random_ratings(7)
    config = SimilarityConfig(table_k=4)
    result = build_similarity(user, item, rating, nu, ni, K=4, config=config, trace_memory=False)
    meta = component_meta(config, 4, tuple(Measure), result.stats)
    meta["hyperparameters"]["format"] = 1  # written before the weighting: its Pearson table is not used
    index = load_component(ArtifactStore(tmp_path).open(write_version(tmp_path, result.arrays, meta)))
    fresh = SimilarityIndex.from_arrays(user, item, rating, nu, ni)
    for i in range(ni):
        for m in Measure:
            got, want = index.similar_items(i, 4, m), fresh.similar_items(i, 4, m, use_table=False)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(InvalidInput, match="table cannot answer"):
        index.similar_items(0, 4, Measure.pearson, use_table=True)

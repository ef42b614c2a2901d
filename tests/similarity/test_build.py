"""The offline build: blocks of any size give the same table; the artifact component round-trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from chorus.services.similarity.build import (
    COMPONENT,
    block_bounds,
    build_similarity,
    component_meta,
    load_component,
    write_component,
)
from chorus.services.similarity.core import MEASURES, SimilarityConfig, SimilarityIndex
from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.errors import ArtifactError


def random_ratings(seed: int, n_users: int = 60, n_items: int = 40, n: int = 500):
    rng = np.random.default_rng(seed)
    # long-tailed, like real data: a few popular items and heavy users
    keys = np.unique(rng.zipf(1.6, 4 * n) % n_users * n_items + rng.zipf(1.4, 4 * n) % n_items)[:n]
    return (
        (keys // n_items).astype(np.int32),
        (keys % n_items).astype(np.int32),
        rng.integers(1, 6, keys.size).astype(np.float32),
        n_users,
        n_items,
    )


def test_block_bounds_cover_rows_within_limits():
    work = np.array([5, 1, 1, 9, 2, 2, 2, 0, 3], dtype=np.int64)
    bounds = block_bounds(work, block_rows=2, block_nnz=4)
    assert bounds[0][0] == 0 and bounds[-1][1] == work.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    for lo, hi in bounds:
        assert hi - lo <= 2 and (hi - lo == 1 or work[lo:hi].sum() <= 4)


@pytest.mark.parametrize("block_rows, block_nnz", [(1, 1), (3, 50), (7, 10**9), (4096, 10**9)])
def test_any_blocking_gives_the_same_table(block_rows, block_nnz):
    user, item, rating, nu, ni = random_ratings(1)
    want = build_similarity(
        user, item, rating, nu, ni, K=5, block_rows=4096, block_nnz=10**9, trace_memory=False
    ).arrays
    got = build_similarity(
        user, item, rating, nu, ni, K=5, block_rows=block_rows, block_nnz=block_nnz, trace_memory=False
    )
    assert got.arrays.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got.arrays[name], want[name], err_msg=name)
    if block_rows == 1:
        assert got.stats["blocks"] == ni


def test_build_result_layout_and_stats():
    user, item, rating, nu, ni = random_ratings(2)
    result = build_similarity(user, item, rating, nu, ni, K=7)
    a, s = result.arrays, result.stats
    for m in MEASURES:
        assert a[f"neighbors_{m}"].shape == (ni, 7) and a[f"neighbors_{m}"].dtype == np.int32
        assert a[f"scores_{m}"].dtype == np.float64
        pad = np.arange(7)[None, :] >= a["n_neighbors"][:, None]
        assert np.all(a[f"neighbors_{m}"][pad] == -1) and np.all(a[f"neighbors_{m}"][~pad] >= 0)
    assert s["peak_traced_bytes"] > 0 and s["seconds"] >= s["table_seconds"] > 0
    assert s["reviews"] == user.size and s["items"] == ni
    index = SimilarityIndex.from_saved(a)
    for i in range(ni):  # the table holds every candidate when there are fewer than K
        n_cand = index.similar_items(i, 10**6, "jaccard", use_table=False)[0].size
        assert a["n_neighbors"][i] == min(7, n_cand)


def write_version(root, arrays, meta):
    with VersionWriter(root) as writer:
        write_component(writer, arrays, meta)
        return writer.commit()


def test_component_round_trip_through_the_artifact_store(tmp_path):
    user, item, rating, nu, ni = random_ratings(3)
    config = SimilarityConfig(table_k=6, like_threshold=5.0)
    result = build_similarity(user, item, rating, nu, ni, K=6, config=config)
    version = write_version(tmp_path, result.arrays, component_meta(config, 6, MEASURES, result.stats))
    opened = ArtifactStore(tmp_path).open(version)
    index = load_component(opened)
    assert index.table_k == 6 and index.config.like_threshold == 5.0
    assert not opened.array(COMPONENT, "item_users").flags.writeable  # memory-mapped, read-only
    fresh = SimilarityIndex.from_arrays(user, item, rating, nu, ni)
    for m in MEASURES:
        for i in range(ni):
            t, o = index.similar_items(i, 6, m), fresh.similar_items(i, 6, m)
            np.testing.assert_array_equal(t[0], o[0])
            np.testing.assert_array_equal(t[1], o[1])
    u = np.arange(nu)
    np.testing.assert_array_equal(index.predict(u, u % ni).rating, fresh.predict(u, u % ni).rating)


def test_load_component_refuses_another_format(tmp_path):
    user, item, rating, nu, ni = random_ratings(4)
    result = build_similarity(user, item, rating, nu, ni, K=3, trace_memory=False)
    meta = component_meta(SimilarityConfig(table_k=3), 3, MEASURES, result.stats)
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


def test_chorus_train_builds_a_loadable_component(tmp_path):
    from chorus.train import train
    from tests.conftest import real_file

    data = real_file("amazon-customer-reviews-tsv-sample", "amazon_reviews_us_sample_761rows.tsv")
    version = train(data, tmp_path, ["similarity"], progress=False, log=lambda _: None)
    index = load_component(ArtifactStore(tmp_path).open(version))
    assert index.has_table and index.table_k == SimilarityConfig().table_k
    assert index.n_items == index.item_count.shape[0] > 0

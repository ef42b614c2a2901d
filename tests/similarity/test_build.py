"""The offline build: blocks of any size give the same table, laid out as documented."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from chorus.services.similarity.config import SimilarityConfig
from chorus.services.similarity.index import SimilarityIndex
from chorus.services.similarity.persistence import load_component
from chorus.shared.artifacts import ArtifactStore
from chorus.shared.contract.names import Measure
from chorus.training.similarity.build import block_bounds, build_similarity
from tests.similarity.reference import random_ratings


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
    for m in Measure:
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


def test_chorus_train_builds_a_loadable_component(tmp_path):
    from chorus.training.train import train
    from tests.conftest import real_file

    data = real_file("amazon-customer-reviews-tsv-sample", "amazon_reviews_us_sample_761rows.tsv")
    version = train(data, tmp_path, ["similarity"], progress=False, log=lambda _: None)
    index = load_component(ArtifactStore(tmp_path).open(version))
    assert index.has_table and index.table_k == SimilarityConfig().table_k
    assert index.n_items == index.item_count.shape[0] > 0

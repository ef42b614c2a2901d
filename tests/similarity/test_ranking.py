"""Ranking keys: rounded score descending, then raw id ascending, decoded exactly."""

from __future__ import annotations

import numpy as np

from chorus.services.similarity.ranking import (
    decode_keys,
    id_rank,
    order_by_rounded_score,
    rank_bits,
    ranking_keys,
    smallest_keys,
)


def test_keys_order_by_rounded_score_then_raw_id_and_decode_exactly():
    ids = np.array(["B3", "A1", "C7", "B2"])
    rank = id_rank(ids)
    assert rank.tolist() == [2, 0, 3, 1]
    index_of_rank = np.argsort(rank)
    score = np.array([0.5, 0.5 + 1e-12, -1.0, 0.75])  # 0 and 1 tie once rounded to 10 places: A1 before B3
    bits = rank_bits(4)
    keys = ranking_keys(score, rank, bits)
    idx, rounded = decode_keys(smallest_keys(keys, 3), index_of_rank, bits)
    assert idx.tolist() == [3, 1, 0]
    np.testing.assert_array_equal(rounded, [0.75, 0.5, 0.5])
    assert order_by_rounded_score(np.array([2.5, 2.5 + 1e-12, 7.0]), np.array([1, 0, 2])).tolist() == [2, 1, 0]

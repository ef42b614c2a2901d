"""Loading within bounded memory: over-long lines skipped and counted without being held, a decompression-ratio
guard, long titles cut and counted and stored without a fixed-width blow-up, and one id limit with the API."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chorus.shared.artifacts import ArtifactStore, VersionWriter
from chorus.shared.contract.errors import DataError
from chorus.shared.contract.names import MAX_ID_LENGTH
from chorus.shared.data import load_ratings
from chorus.shared.data.component import load_data_component, save_data_component
from chorus.shared.data.ratings import MAX_TITLE_LENGTH, LoadReport
from chorus.shared.data.rows import line_blocks
from tests.shared.test_loaders import TSV_HEADER, tsv_row

REPO = Path(__file__).resolve().parents[2]


def json_row(user: str, item: str, stars: int = 5, **extra: object) -> str:
    return json.dumps({"reviewerID": user, "asin": item, "overall": stars, "unixReviewTime": 1400000000, **extra})


def noise(n: int, seed: int = 0) -> str:
    """``n`` letters that gzip cannot squeeze much (so the decompression guard stays out of the way)."""
    return np.random.default_rng(seed).integers(97, 123, n, dtype=np.uint8).tobytes().decode()


# -- line_blocks against a reference written from its definition ------------------------------------------------


def reference_blocks(data: bytes, cap: int) -> tuple[list[tuple[int, bytes]], list[int]]:
    """Every line (number, bytes with its newline) of at most ``cap`` bytes, and the numbers of the longer ones."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kept = [(k + 1, ln + b"\n") for k, ln in enumerate(lines) if len(ln) <= cap]
    return kept, [k + 1 for k, ln in enumerate(lines) if len(ln) > cap]


def flatten(blocks) -> list[tuple[int, bytes]]:
    out = []
    for start, data in blocks:
        assert data.endswith(b"\n")
        for k, ln in enumerate(data[:-1].split(b"\n")):
            out.append((start + k, ln + b"\n"))
    return out


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), max_size=30),
    trailing_newline=st.booleans(),
    block=st.integers(1, 50),
    cap=st.integers(0, 30),
)
def test_line_blocks_keep_every_short_line_with_its_number_and_count_the_long_ones(
    lengths, trailing_newline, block, cap
):
    data = b"\n".join(bytes([97 + k % 26]) * n for k, n in enumerate(lengths))
    if trailing_newline and data:
        data += b"\n"
    report = LoadReport(path="x", format="x")
    got = flatten(line_blocks(io.BytesIO(data), report, block_bytes=block, max_line=cap))
    want, long = reference_blocks(data, cap)
    assert got == want
    assert report.skipped_by_reason.get("line_too_long", 0) == len(long)
    assert [line for line, _, _ in report.examples] == long[:5]


def test_an_over_long_line_is_never_held_whole():
    """A 64 MiB line streams past in 1 MiB blocks: nothing the reader yields or keeps grows with it."""

    class Stream(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = [b"ok\n", *(b"x" * (1 << 20) for _ in range(64)), b"\nafter\n"]

        def read(self, size: int = -1) -> bytes:
            return self.parts.pop(0) if self.parts else b""

    report = LoadReport(path="x", format="x")
    blocks = list(line_blocks(Stream(), report, block_bytes=1 << 20, max_line=1 << 20))
    assert blocks == [(1, b"ok\n"), (3, b"after\n")]
    assert dict(report.skipped_by_reason) == {"line_too_long": 1} and report.examples[0][0] == 2


# -- the readers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["amazon-json", "amazon-tsv", "movielens-csv"])
def test_an_over_long_row_is_skipped_as_line_too_long_and_later_rows_keep_their_numbers(tmp_path, fmt):
    long = noise(3 << 20)  # 3 MiB, over the 1 MiB default
    if fmt == "amazon-json":
        rows = [json_row("u1", "i1"), json_row("u2", "i1", reviewText=long), json_row("u3", "i2"), "{bad"]
        path = tmp_path / "reviews.json.gz"
    elif fmt == "amazon-tsv":
        rows = [TSV_HEADER, tsv_row("1"), tsv_row("2", body=long), tsv_row("3", prod="P2"), "bad"]
        path = tmp_path / "reviews.tsv.gz"
    else:
        rows = ["userId,movieId,rating,timestamp", "1,1,4.0,1", f"2,1,4.0,1{long}", "3,2,4.0,1", "bad"]
        path = tmp_path / "ratings.csv"
    body = ("\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(body, 1) if path.suffix == ".gz" else body)
    r = load_ratings(path, fmt)
    assert r.n == 2
    reasons = dict(r.report.skipped_by_reason)
    assert reasons.pop("line_too_long") == 1 and sum(reasons.values()) == 1
    skipped = {reason: line for line, reason, _ in r.report.examples}
    first = 2 if fmt == "amazon-json" else 3
    assert skipped["line_too_long"] == first and min(v for k, v in skipped.items() if k != "line_too_long") == first + 2


def test_the_line_cap_is_a_parameter(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text("\n".join([json_row("u1", "i1"), json_row("u2", "i1", reviewText="x" * 300)]) + "\n")
    assert load_ratings(path).n == 2
    r = load_ratings(path, max_line_bytes=200)
    assert r.n == 1 and dict(r.report.skipped_by_reason) == {"line_too_long": 1}


def write_gzip_line(path: Path, mib: int) -> None:
    """A gzip holding one valid row and then one line of ``mib`` MiB, written in 8 MiB pieces."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    piece = b"abcdefghij" * (8 << 17)  # 10 MiB of a pattern gzip squeezes about a thousandfold
    with open(path, "wb") as f:
        f.write(z.compress((json_row("u1", "i1") + "\n").encode()))
        f.write(z.compress(b'{"reviewerID": "u2", "asin": "i2", "overall": 4, "reviewText": "'))
        for _ in range(mib * 8 // 80):
            f.write(z.compress(piece))
        f.write(z.compress(b'"}\n'))
        f.write(z.flush())


@pytest.mark.timeout(120)
def test_a_gzip_holding_one_1_gib_line_ends_with_a_clear_message(tmp_path):
    path = tmp_path / "bomb.json.gz"
    write_gzip_line(path, 1024)
    assert path.stat().st_size < 8 << 20
    cmd = [sys.executable, "-m", "chorus.cli", "data", "stats", "--data", str(path), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1, done.stderr
    assert "decompresses to more than 100 times its size" in done.stderr and "decompression bomb" in done.stderr
    # without the ratio guard the line streams past, skipped and counted
    env = dict(os.environ, CHORUS_MAX_DECOMPRESSION_RATIO="0")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["reviews"] == 1 and stats["skipped_by_reason"] == {"line_too_long": 1}


def test_the_decompression_guard_lets_ordinary_files_through_and_stops_bombs(tmp_path, amazon_5core):
    assert load_ratings(amazon_5core, max_ratio=5).n == 10_261  # the real file inflates about 3 times
    path = tmp_path / "bomb.json.gz"
    write_gzip_line(path, 80)
    with pytest.raises(DataError, match="decompresses to more than 50 times its size"):
        load_ratings(path, max_ratio=50)
    assert load_ratings(path, max_ratio=0).report.skipped_by_reason == {"line_too_long": 1}


# -- titles and ids ----------------------------------------------------------------------------------------------


def test_long_titles_are_cut_counted_and_stored_at_their_own_length(tmp_path):
    rows = [TSV_HEADER] + [tsv_row(str(u), f"P{u}", title=f"title {u}") for u in range(200)]
    rows.append(tsv_row("900", "P7", title="é" * (64 << 10)))  # a 64 KiB title (128 KiB of UTF-8)
    path = tmp_path / "reviews.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = load_ratings(path)
    assert r.report.titles_truncated == 1 and r.report.to_dict()["titles_truncated"] == 1
    seven = r.item_ids.tolist().index("P7")
    assert r.titles[seven] == "é" * MAX_TITLE_LENGTH and r.titles[0] == "title 0"
    assert r.titles.nbytes < 200 * 64  # variable width in memory, not 201 × 512 characters
    with VersionWriter(tmp_path / "artifacts") as w:
        save_data_component(w, r)
        version = w.commit()
    opened = ArtifactStore(tmp_path / "artifacts").open(version, load=True)
    stored = opened.component_meta("data")["files"]
    assert "titles" not in stored and stored["titles_utf8"]["bytes"] < 4096
    back = load_data_component(opened)
    assert back.titles.tolist() == r.titles.tolist() and back.report.titles_truncated == 1


def test_ids_up_to_the_shared_limit_are_loaded_and_longer_ones_skipped(tmp_path):
    ok, too_long = "u" * MAX_ID_LENGTH, "u" * (MAX_ID_LENGTH + 1)
    path = tmp_path / "reviews.json"
    path.write_text("\n".join([json_row(ok, "i1"), json_row(too_long, "i1"), json_row("v", "i" * MAX_ID_LENGTH)]))
    r = load_ratings(path)
    assert sorted(r.user_ids.tolist()) == sorted([ok, "v"]) and dict(r.report.skipped_by_reason) == {"id_too_long": 1}


def test_an_id_of_the_longest_length_the_loader_keeps_is_queryable_through_the_api(tmp_path):
    from fastapi.testclient import TestClient

    from chorus.services.similarity.app import create_app
    from chorus.services.similarity.settings import Settings
    from chorus.training.train import train

    longest = "u" * MAX_ID_LENGTH
    rng = np.random.default_rng(0)
    users = [longest] + [f"user{u}" for u in range(30)]
    rows = [json_row(u, f"i{i}", int(rng.integers(1, 6))) for u in users for i in range(8) if rng.random() < 0.7]
    rows.append(json_row(longest, "i0", 4))
    path = tmp_path / "reviews.json"
    path.write_text("\n".join(rows) + "\n")
    train(path, tmp_path / "artifacts", ["similarity"], progress=False, log=lambda _m: None)
    with TestClient(create_app(Settings(artifacts=tmp_path / "artifacts", reload_interval=3600))) as client:
        r = client.get(f"/v1/users/{longest}/similar", params={"k": 3})
        assert r.status_code == 200, r.text
        r = client.get(f"/v1/users/{longest}x/similar")
        assert r.status_code == 422 and str(MAX_ID_LENGTH) in r.json()["detail"]


def test_versions_that_stored_titles_fixed_width_still_load(tmp_path, amazon_tsv_sample):
    r = load_ratings(amazon_tsv_sample, progress=False)
    with VersionWriter(tmp_path) as w:
        save_data_component(w, r)
        meta = w.manifest["components"]["data"]["files"]
        for name in ("titles_offsets", "titles_utf8"):  # as written before offsets and UTF-8 bytes
            (w.tmp / meta.pop(name)["path"]).unlink()
        w.save_array("data", "titles", np.array(r.titles.tolist(), dtype=str))
        version = w.commit()
    back = load_data_component(ArtifactStore(tmp_path).open(version, load=True))
    assert back.titles.tolist() == r.titles.tolist()


def test_the_limits_come_from_the_environment_and_a_bad_value_is_named(tmp_path, monkeypatch):
    path = tmp_path / "reviews.json"
    path.write_text("\n".join([json_row("u1", "i1"), json_row("u2", "i1", reviewText="x" * 300)]) + "\n")
    monkeypatch.setenv("CHORUS_MAX_LINE_BYTES", "200")
    assert dict(load_ratings(path).report.skipped_by_reason) == {"line_too_long": 1}
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv("CHORUS_MAX_LINE_BYTES", bad)
        with pytest.raises(DataError, match=f"CHORUS_MAX_LINE_BYTES must be a non-negative number, got '{bad}'"):
            load_ratings(path)

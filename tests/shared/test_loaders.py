"""Loaders against every real file (exact counts) and crafted files with each kind of bad row."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from chorus.shared.contract.errors import DataError
from chorus.shared.data import FORMATS, REASONS, dataset_stats, detect_format, load_ratings
from chorus.shared.data.loaders import explain
from tests.conftest import real_file

TSV_HEADER = (
    "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\tproduct_title\tproduct_category\t"
    "star_rating\thelpful_votes\ttotal_votes\tvine\tverified_purchase\treview_headline\treview_body\t"
    "review_date"
)


def tsv_row(
    cust="1",
    prod="P1",
    stars="5",
    title="A Title",
    date="2015-08-31",
    helpful="0",
    total="0",
    verified="Y",
    body="fine",
):
    return "\t".join(
        [
            "US",
            cust,
            "R1",
            prod,
            "9",
            title,
            "Musical Instruments",
            stars,
            helpful,
            total,
            "N",
            verified,
            "head",
            body,
            date,
        ]
    )


def test_movielens_100k_exact(ml100k):
    r = load_ratings(ml100k)
    s = dataset_stats(r)
    assert (s["reviews"], s["users"], s["items"]) == (100_000, 943, 1682)
    assert s["mean_rating"] == pytest.approx(3.52986, abs=1e-5)
    assert s["rating_histogram"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert s["verified_fraction"] is None
    assert (s["first_date"], s["last_date"]) == ("1997-09-20", "1998-04-22")
    assert s["skipped_rows"] == 0
    # titles come from u.item beside it (Latin-1)
    assert r.titles[list(r.item_ids).index("1")] == "Toy Story (1995)"
    assert r.user.dtype == np.int32 and r.rating.dtype == np.float32 and r.timestamp.dtype == np.int64


def test_amazon_5core_json_exact(amazon_5core):
    r = load_ratings(amazon_5core)
    s = dataset_stats(r)
    assert r.report.format == "amazon-json"
    assert (s["reviews"], s["users"], s["items"]) == (10_261, 1429, 900)
    assert s["rating_histogram"] == {"1": 217, "2": 250, "3": 772, "4": 2084, "5": 6938}
    assert s["mean_rating"] == pytest.approx(4.4887, abs=1e-4)
    assert (s["first_date"], s["last_date"]) == ("2004-09-18", "2014-07-22")
    assert s["verified_fraction"] is None  # the 2014 release has no verified field
    assert r.helpful_votes is not None and r.total_votes is not None
    assert (r.helpful_votes <= r.total_votes).all()


def test_amazon_tsv_sample_exact(amazon_tsv_sample):
    r = load_ratings(amazon_tsv_sample, with_text=True)
    s = dataset_stats(r)
    assert (s["reviews"], s["users"], s["items"]) == (761, 717, 737)
    assert s["rating_histogram"] == {"1": 70, "2": 34, "3": 62, "4": 124, "5": 471}
    assert r.verified is not None and int(r.verified.sum()) == 706
    # the sample's second data row: customer 14640079, product B003LRN53I, Sennheiser HD203, 5 stars
    u = list(r.user_ids).index("14640079")
    i = list(r.item_ids).index("B003LRN53I")
    row = np.flatnonzero((r.user == u) & (r.item == i))
    assert row.size == 1 and r.rating[row[0]] == 5.0
    assert "Sennheiser HD203" in r.titles[i]
    assert r.text is not None and len(r.text) == 761


def test_gzip_and_plain_give_the_same(tmp_path, amazon_tsv_sample):
    gz = tmp_path / "sample.tsv.gz"
    with open(amazon_tsv_sample, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    a, b = load_ratings(amazon_tsv_sample), load_ratings(gz)
    assert np.array_equal(a.user_ids, b.user_ids) and np.array_equal(a.rating, b.rating)
    assert np.array_equal(a.titles, b.titles)


def test_tsv_bad_rows_are_skipped_counted_and_reported(tmp_path):
    rows = [
        TSV_HEADER,
        tsv_row(cust="1", prod="P1"),  # 2 ok
        "US\t2\tR\tP2\tonly five fields",  # 3 wrong_field_count
        tsv_row(cust="", prod="P1"),  # 4 empty_user_id
        tsv_row(cust="3", prod=""),  # 5 empty_item_id
        tsv_row(cust="4", stars="five"),  # 6 bad_rating
        tsv_row(cust="5", stars="6"),  # 7 rating_out_of_scale
        tsv_row(cust="6", stars="3.5"),  # 8 rating_out_of_scale (integer stars)
        tsv_row(cust="7", date="31/08/2015"),  # 9 bad_timestamp
        tsv_row(cust="8", helpful="x"),  # 10 bad_votes
        tsv_row(cust="9", prod="P2", title='He said "great"', stars="4"),  # 11 ok, quote is ordinary
        "",  # 12 wrong_field_count (blank line)
    ]
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(rows) + "\n")
    r = load_ratings(path)
    assert r.n == 2
    assert dict(r.report.skipped_by_reason) == {
        "wrong_field_count": 2,
        "empty_user_id": 1,
        "empty_item_id": 1,
        "bad_rating": 1,
        "rating_out_of_scale": 2,
        "bad_timestamp": 1,
        "bad_votes": 1,
    }
    assert r.report.rows_read == 11
    assert [(line, reason) for line, reason, _ in r.report.examples] == [
        (3, "wrong_field_count"),
        (12, "wrong_field_count"),
        (4, "empty_user_id"),
        (5, "empty_item_id"),
        (6, "bad_rating"),
    ]
    assert r.titles[list(r.item_ids).index("P2")] == 'He said "great"'


def test_duplicate_pair_keeps_latest_review(tmp_path):
    path = tmp_path / "dups.tsv"
    path.write_text(
        "\n".join(
            [
                TSV_HEADER,
                tsv_row(cust="1", prod="P1", stars="2", date="2015-01-01"),
                tsv_row(cust="1", prod="P1", stars="5", date="2015-03-01"),  # latest: kept
                tsv_row(cust="1", prod="P1", stars="3", date="2015-02-01"),
                tsv_row(cust="2", prod="P1", stars="1", date="2015-01-01"),
                tsv_row(cust="2", prod="P1", stars="4", date="2015-01-01"),  # same time, later in file: kept
            ]
        )
        + "\n"
    )
    r = load_ratings(path)
    assert r.n == 2
    assert sorted(r.rating.tolist()) == [4.0, 5.0]
    assert r.report.skipped_by_reason["duplicate_pair"] == 3
    assert {line for line, reason, _ in r.report.examples if reason == "duplicate_pair"} == {2, 4, 5}


def test_json_lines_bad_rows(tmp_path):
    lines = [
        '{"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1400000000, "helpful": [1, 2]}',
        '{"reviewerID": "B", "asin": "X", "overall": 4.0, "unixReviewTime": 1400000000, "verified": true}',
        "{not json",
        '{"reviewerID": "", "asin": "X", "overall": 4.0, "unixReviewTime": 1}',
        '{"reviewerID": "C", "asin": "X", "overall": 0.0, "unixReviewTime": 1}',
        '{"reviewerID": "D", "asin": "X", "overall": 3.0}',
        '{"reviewerID": "E", "asin": "Y", "overall": "NaN", "unixReviewTime": 1}',
    ]
    path = tmp_path / "reviews.json.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    r = load_ratings(path)
    assert r.n == 2
    assert dict(r.report.skipped_by_reason) == {
        "bad_json": 1,
        "empty_user_id": 1,
        "rating_out_of_scale": 1,
        "bad_timestamp": 1,
        "bad_rating": 1,
    }
    assert r.verified is not None and r.verified.tolist() == [False, True]


def test_movielens_csv_crlf_half_stars_and_titles(tmp_path):
    (tmp_path / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,10,4.5,964982703\r\n1,20,0.5,964982224\r\n"
        b"2,10,5.5,964983815\r\n2,20,3.25,964982931\r\n3,x\r\n2,30,,964982931\r\n"
    )
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n10,"Heat, The (1995)",Action\n20,Up (2009),Kids\n')
    r = load_ratings(tmp_path / "ratings.csv")
    assert r.report.format == "movielens-csv"
    assert r.n == 2 and sorted(r.rating.tolist()) == [0.5, 4.5]
    assert dict(r.report.skipped_by_reason) == {"rating_out_of_scale": 2, "wrong_field_count": 1, "bad_rating": 1}
    assert list(r.titles) == ["Heat, The (1995)", "Up (2009)"]
    s = dataset_stats(r)
    assert s["rating_histogram"]["0.5"] == 1 and s["rating_histogram"]["4.5"] == 1


def test_no_valid_row_is_a_clear_error(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\tx\t3\n1\t2\n")
    with pytest.raises(DataError, match="no valid movielens-100k row .1 bad_rating, 1 wrong_field_count skipped.") as e:
        load_ratings(path, format="movielens-100k")
    assert "the first: line 1, bad_rating: '1\\t2\\tx\\t3' (the rating must be a number)" in e.value.detail


def test_a_file_without_the_columns_of_its_format_names_them(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating\n1,10,4.0\n1,20,3.5\n2,10,5.0\n")  # no timestamp
    with pytest.raises(DataError) as e:
        load_ratings(path)
    assert e.value.detail.startswith(f"{path} has no valid movielens-csv row (3 wrong_field_count skipped)")
    assert "line 2, wrong_field_count: '1,10,4.0' (3 fields; each movielens-csv row has 4" in e.value.detail
    assert e.value.detail.endswith("comma-separated fields: userId,movieId,rating,timestamp)")


def test_a_folder_is_named_a_folder_with_the_review_files_in_it(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path} is a folder, not a data file: name the review file itself$"):
        load_ratings(tmp_path)
    (tmp_path / "README").write_text("MovieLens 100K\n")
    (tmp_path / "u.data").write_text("1\t2\t3\t881250949\n")
    with pytest.raises(DataError) as e:
        load_ratings(tmp_path)
    assert e.value.detail.endswith(f"review files in it: {tmp_path / 'u.data'} (movielens-100k)")


@pytest.mark.parametrize("name", ["photo.dat", "photo.tsv", "photo.json.gz"])
def test_a_binary_file_is_named_binary_and_never_printed(tmp_path, name):
    data = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
    path = tmp_path / name
    if name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    with pytest.raises(DataError) as e:
        load_ratings(path)
    assert e.value.detail.startswith(f"{path} is not a review dump: it holds binary data, not text")
    assert "\ufffd" not in e.value.detail and "\\x" not in e.value.detail


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("format", FORMATS)
def test_every_reason_is_explained_for_every_format(reason, format):
    assert explain(reason, format)


def test_unknown_format_and_missing_file(tmp_path):
    path = tmp_path / "mystery.txt"
    path.write_text("hello world\n")
    with pytest.raises(DataError, match="cannot tell the format of .*mystery.txt from its name or its first line "):
        load_ratings(path)
    with pytest.raises(DataError, match="no such data file"):
        load_ratings(tmp_path / "absent.tsv")
    with pytest.raises(DataError, match="unknown format"):
        load_ratings(path, format="csv")


def test_detect_formats(amazon_tsv_sample, amazon_5core):
    assert detect_format(amazon_tsv_sample) == "amazon-tsv"
    assert detect_format(amazon_5core) == "amazon-json"
    assert detect_format(real_file("movielens-100k", "u1.base")) == "movielens-100k"


def test_tsv_fast_path_edge_cases(tmp_path):
    rows = [
        TSV_HEADER,
        tsv_row(cust="1", prod="P1", stars="05"),  # 2 ok: parsed by the slow path as 5
        tsv_row(cust="2", prod="P1", date="2015-02-30"),  # 3 bad_timestamp: no such day
        tsv_row(cust="3", prod="P1", helpful="-1"),  # 4 bad_votes
        tsv_row(cust="4", prod="P1", helpful="3", total="2"),  # 5 bad_votes: more helpful than total
        tsv_row(cust="ü5", prod="Pé", title="Gitarre für Anfänger"),  # 6 ok: UTF-8 ids and title
        tsv_row(cust="6", prod="P1", date="2016-02-29"),  # 7 ok: leap day
        tsv_row(cust="7", prod="P1", total="1234567890123"),  # 8 ok: long number, slow path
    ]
    path = tmp_path / "edge.tsv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())  # CRLF line endings
    r = load_ratings(path)
    assert dict(r.report.skipped_by_reason) == {"bad_timestamp": 1, "bad_votes": 2}
    assert r.n == 4 and sorted(r.user_ids.tolist()) == ["1", "6", "7", "ü5"]
    assert r.titles[r.item_ids.tolist().index("Pé")] == "Gitarre für Anfänger"
    assert dataset_stats(r)["last_date"] == "2016-02-29"
    assert r.total_votes is not None
    assert int(r.total_votes.max()) != 0


def test_tsv_reader_matches_a_plain_python_reference(tmp_path):
    from chorus.shared.data.synthetic import generate_reviews

    path = generate_reviews(tmp_path / "g.tsv", 3000, seed=5, progress=False)
    r = load_ratings(path)
    lines = path.read_text().splitlines()[1:]
    ref = {}
    for ln in lines:
        f = ln.split("\t")
        ref[(f[1], f[3])] = (float(f[7]), f[11] == "Y", int(f[8]), int(f[9]), f[5])
    got = {}
    assert r.verified is not None and r.helpful_votes is not None and r.total_votes is not None
    for k in range(r.n):
        u, i = r.user_ids[r.user[k]], r.item_ids[r.item[k]]
        got[(u, i)] = (
            float(r.rating[k]),
            bool(r.verified[k]),
            int(r.helpful_votes[k]),
            int(r.total_votes[k]),
            r.titles[r.item[k]],
        )
    assert got == ref


def test_damaged_gzip_is_a_clear_error(tmp_path, amazon_tsv_sample):
    data = gzip.compress(amazon_tsv_sample.read_bytes())
    (tmp_path / "cut.tsv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read .*cut.tsv.gz"):
        load_ratings(tmp_path / "cut.tsv.gz")
    (tmp_path / "bad.tsv.gz").write_bytes(data[:20] + b"\x00" * 40 + data[60:])
    with pytest.raises(DataError, match="cannot read"):
        load_ratings(tmp_path / "bad.tsv.gz", format="amazon-tsv")


def test_byte_order_mark_long_ids_and_old_dates(tmp_path):
    rows = [
        TSV_HEADER,
        tsv_row(cust="1"),
        tsv_row(cust="x" * 300),
        tsv_row(cust="2", prod="P" * 257),
        tsv_row(cust="3", date="1969-07-20"),
    ]
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(rows) + "\n").encode())
    r = load_ratings(path)
    assert r.n == 2 and dict(r.report.skipped_by_reason) == {"id_too_long": 2}
    assert dataset_stats(r)["first_date"] == "1969-07-20"
    csv_path = tmp_path / "ratings.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfuserId,movieId,rating,timestamp\n1,2,3.5,10\n")
    assert load_ratings(csv_path).report.skipped_rows == 0


def test_json_verified_words_float_times_and_votes(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(
        "\n".join(
            [
                '{"reviewerID": "A", "asin": "X", "overall": 5, "unixReviewTime": 1393545600.0, "verified": "false"}',
                '{"reviewerID": "B", "asin": "X", "overall": 4, "unixReviewTime": 1393545600, "verified": "true"}',
                '{"reviewerID": "C", "asin": "X", "overall": 4, "unixReviewTime": 1.5, "verified": true}',
                '{"reviewerID": "D", "asin": "X", "overall": 4, "unixReviewTime": 1, "helpful": [3, 2]}',
            ]
        )
        + "\n"
    )
    r = load_ratings(path)
    assert r.verified is not None
    assert r.n == 2 and r.verified.tolist() == [False, True]
    assert dict(r.report.skipped_by_reason) == {"bad_timestamp": 1, "bad_votes": 1}


def test_an_over_long_id_never_reaches_the_vocabulary(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = [f"{u},{u % 7},4.0,100" for u in range(50)] + ["x" * 20000 + ",1,4.0,100", "9,é" * 1 + "é" * 200 + ",4,1"]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    r = load_ratings(path)
    assert r.n == 50 and r.report.skipped_by_reason["id_too_long"] == 2
    assert r.user_ids.dtype.itemsize <= 4 * 4  # '<U4' at most: the 20,000-character id is not in it


def test_json_booleans_are_not_numbers_and_zero_is_an_id(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(
        "\n".join(
            [
                '{"reviewerID": 0, "asin": "X", "overall": 5, "unixReviewTime": 100}',
                '{"reviewerID": "B", "asin": "X", "overall": true, "unixReviewTime": 100}',
                '{"reviewerID": "C", "asin": "X", "overall": 4, "unixReviewTime": true}',
            ]
        )
        + "\n"
    )
    r = load_ratings(path)
    assert r.user_ids.tolist() == ["0"]
    assert dict(r.report.skipped_by_reason) == {"bad_rating": 1, "bad_timestamp": 1}


def _same_table(a, b):
    for name in ("user", "item", "rating", "timestamp", "user_ids", "item_ids", "titles", "verified"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name
    assert a.report.to_dict() == b.report.to_dict()


@pytest.mark.parametrize("fixture", ["amazon_tsv_sample", "amazon_5core"])
def test_text_kept_only_within_text_max_rows(request, fixture):
    path = request.getfixturevalue(fixture)
    full = load_ratings(path, with_text=True)
    assert full.text is not None
    within = load_ratings(path, with_text=True, text_max_rows=full.n)
    assert within.text is not None and within.text.tolist() == full.text.tolist()
    over = load_ratings(path, with_text=True, text_max_rows=full.n - 1)
    assert over.text is None  # dropped, and nothing else changes
    _same_table(over, full)
    _same_table(over, load_ratings(path))


def test_text_read_again_when_duplicates_bring_the_rows_within_text_max_rows(tmp_path):
    # 12 rows, 4 distinct pairs: the rows pass a limit of 5 while the file is read, the table is within it
    rows = [
        tsv_row(cust=str(u), prod=f"P{u}", date=f"2015-08-{10 + k}", body=f"take {k} of {u}")
        for k in range(3)
        for u in range(4)
    ]
    path = tmp_path / "dups.tsv"
    path.write_text(TSV_HEADER + "\n" + "\n".join(rows) + "\n")
    full = load_ratings(path, with_text=True)
    limited = load_ratings(path, with_text=True, text_max_rows=5)
    assert full.n == 4 and full.report.skipped_by_reason["duplicate_pair"] == 8
    assert limited.text is not None and full.text is not None and limited.text.tolist() == full.text.tolist()
    assert all(t.endswith(f"take 2 of {u}") for t, u in zip(limited.text.tolist(), limited.user.tolist(), strict=True))
    _same_table(limited, full)
    assert load_ratings(path, with_text=True, text_max_rows=3).text is None  # 4 rows: over it


def test_text_max_rows_in_json_lines(tmp_path):
    recs = [
        f'{{"reviewerID": "U{k % 3}", "asin": "I{k}", "overall": 4, "unixReviewTime": {k}, '
        f'"summary": "s{k}", "reviewText": "t{k}"}}'
        for k in range(6)
    ]
    path = tmp_path / "r.json"
    path.write_text("\n".join(recs) + "\n")
    within = load_ratings(path, with_text=True, text_max_rows=6).text
    assert within is not None and within.tolist() == [f"s{k}\nt{k}" for k in range(6)]
    assert load_ratings(path, with_text=True, text_max_rows=5).text is None
    assert load_ratings(path, text_max_rows=6).text is None  # without with_text, no text at any size

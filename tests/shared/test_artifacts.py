"""The artifact store: atomic publication, verification, pruning."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from chorus.shared.artifacts import ArtifactStore, VersionWriter, list_versions, read_current, set_current
from chorus.shared.contract.errors import ArtifactError
from chorus.shared.data import load_ratings
from chorus.shared.data.component import load_data_component, save_data_component
from tests.conftest import REPO


def publish(root, value: float = 1.0, keep: int = 5) -> str:
    with VersionWriter(root) as w:
        w.save_array("model", "weights", np.full((3, 2), value, dtype=np.float32))
        w.save_array("model", "names", np.array(["a", "bb", "ccc"]))
        w.set_component_meta("model", hyperparameters={"k": 2}, metrics={"rmse": 0.9})
        return w.commit(keep=keep)


def test_publish_and_open(tmp_path):
    v = publish(tmp_path)
    assert read_current(tmp_path) == v
    version = ArtifactStore(tmp_path).open()
    arr = version.array("model", "weights")
    assert not isinstance(arr, np.memmap) and not arr.flags.writeable  # a private copy, never a map
    assert arr.shape == (3, 2) and arr.dtype == np.float32
    assert version.array("model", "names").tolist() == ["a", "bb", "ccc"]
    assert version.component_meta("model")["metrics"] == {"rmse": 0.9}
    files = version.manifest["components"]["model"]["files"]
    assert files["weights"]["shape"] == [3, 2] and len(files["weights"]["sha256"]) == 64


def test_crash_mid_write_leaves_current_on_previous_version(tmp_path):
    good = publish(tmp_path)
    script = textwrap.dedent(f"""
        import os, numpy as np
        from chorus.shared.artifacts import VersionWriter
        w = VersionWriter({str(tmp_path)!r})
        w.save_array("model", "weights", np.zeros((1000, 10)))
        os._exit(9)  # the process dies before commit: no manifest, no rename, no CURRENT update
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert proc.returncode == 9
    assert read_current(tmp_path) == good
    assert list_versions(tmp_path) == [good]
    assert ArtifactStore(tmp_path).open().name == good
    # the abandoned temporary directory is cleaned up by the next publication
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    publish(tmp_path)
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_exception_inside_writer_publishes_nothing(tmp_path):
    good = publish(tmp_path)
    with pytest.raises(RuntimeError), VersionWriter(tmp_path) as w:
        w.save_array("model", "weights", np.ones(3))
        raise RuntimeError("training failed")
    assert read_current(tmp_path) == good and list_versions(tmp_path) == [good]
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_tampered_truncated_missing_files_are_refused(tmp_path):
    v = publish(tmp_path)
    path = tmp_path / v / "model" / "weights.npy"
    data = path.read_bytes()
    store = ArtifactStore(tmp_path)

    path.write_bytes(data[:-4] + b"\x00\x00\x00\x40")  # same size, altered value
    with pytest.raises(ArtifactError, match="weights fails its checksum"):
        store.open()
    path.write_bytes(data[:-8])
    with pytest.raises(ArtifactError, match="truncated or altered"):
        store.open()
    path.unlink()
    with pytest.raises(ArtifactError, match="model/weights is missing"):
        store.open()
    path.write_bytes(data)
    assert store.open().name == v


def test_missing_component_version_and_current(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="no version to serve"):
        store.open()
    v = publish(tmp_path)
    with pytest.raises(ArtifactError, match="lacks the component.*rating"):
        store.open(components=["rating"])
    with pytest.raises(ArtifactError, match="incomplete or missing"):
        store.open(version="nope")
    (tmp_path / v / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        store.open()


def test_prune_keeps_newest_and_current(tmp_path):
    names = [publish(tmp_path, value=float(i), keep=3) for i in range(5)]
    assert list_versions(tmp_path) == names[-3:]
    assert read_current(tmp_path) == names[-1]


def test_object_arrays_are_refused(tmp_path):
    with VersionWriter(tmp_path) as w, pytest.raises(ArtifactError, match="object arrays"):
        w.save_array("model", "bad", np.array([{"a": 1}], dtype=object))


def test_data_component_round_trip(tmp_path, amazon_tsv_sample):
    r = load_ratings(amazon_tsv_sample)
    with VersionWriter(tmp_path) as w:
        save_data_component(w, r)
        w.commit()
    back = load_data_component(ArtifactStore(tmp_path).open(components=["data"]))
    for name in ("user", "item", "rating", "timestamp", "user_ids", "item_ids", "titles"):
        assert np.array_equal(getattr(back, name), getattr(r, name)), name
    assert back.scale == r.scale and back.n_items == r.n_items


def test_adopt_component_links_files(tmp_path):
    publish(tmp_path)
    old = ArtifactStore(tmp_path).open()
    with VersionWriter(tmp_path) as w:
        w.save_array("other", "x", np.arange(3))
        w.adopt_component(old, "model")
        v = w.commit()
    new = ArtifactStore(tmp_path).open()
    assert new.name == v and new.component_meta("model")["adopted_from"] == old.name
    assert np.array_equal(new.array("model", "weights"), old.array("model", "weights"))
    assert os.path.samefile(new.path / "model" / "weights.npy", old.path / "model" / "weights.npy")


def test_prune_keeps_the_directory_of_a_live_concurrent_writer(tmp_path):
    publish(tmp_path)
    host = socket.gethostname()
    live = tmp_path / f".tmp-20990101T000000.000000Z-beef@{host}-pid{os.getppid()}"  # the parent process lives
    elsewhere = tmp_path / ".tmp-20990101T000000.000000Z-cafe@another-host-pid1"  # a writer in a container
    live.mkdir()
    elsewhere.mkdir()
    publish(tmp_path)
    assert live.exists() and elsewhere.exists()


def test_set_current_accepts_only_versions_of_this_root(tmp_path):
    v = publish(tmp_path / "a")
    publish(tmp_path / "b")
    for bad in (f"../a/{v}", f"{v}/", "nope"):
        with pytest.raises(ArtifactError, match="not a complete version"):
            set_current(tmp_path / "b", bad)

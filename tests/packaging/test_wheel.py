"""The wheel installs one import namespace, ``chorus``, with every package folder beneath it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # built from a copy, so that setuptools' build/ and egg-info folders stay out of the checkout
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("chorus",):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        timeout=240,
    )
    (path,) = out.glob("chorus_recommender-*.whl")
    return zipfile.ZipFile(path)


def test_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["chorus"]
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"chorus"}


def test_services_shared_and_training_are_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for module in (
        "chorus/services/gateway/app.py",
        "chorus/services/similarity/app.py",
        "chorus/services/rating/app.py",
        "chorus/shared/artifacts.py",
        "chorus/shared/data/loaders.py",
        "chorus/services/gateway/templates/index.html",
        "chorus/cli.py",
        "chorus/training/train.py",
    ):
        assert module in names, module


def test_every_package_folder_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    """Every package folder under chorus/ is found by setuptools and lands in the wheel."""
    names = set(wheel.namelist())
    for init in (ROOT / "chorus").rglob("__init__.py"):
        if "__pycache__" in init.parts:
            continue
        assert init.relative_to(ROOT).as_posix() in names, f"{init.parent.relative_to(ROOT)} is missing from the wheel"

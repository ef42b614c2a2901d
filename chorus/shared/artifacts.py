"""The artifact store: versioned, checksummed, atomically published model files.

Layout of an artifact root::

    <root>/CURRENT                      the name of the version to serve (replaced atomically)
    <root>/<version>/manifest.json      format version, creation time, dataset fingerprint and statistics,
                                        components, and for every file: sha256, bytes, shape, dtype;
                                        each component's hyperparameters and metrics
    <root>/<version>/<component>/<name>.npy
    <root>/.tmp-<version>/              a version being written (never read by a loader)

Writing (:class:`VersionWriter`): arrays go into a temporary directory and are fsynced; the manifest is
written last; the directory is renamed to its final name; only then is ``CURRENT`` replaced (temporary file,
fsync, ``os.replace``). A crash at any point leaves ``CURRENT`` on the previous complete version.

Reading (:class:`ArtifactStore.open`): the manifest is validated and every file of the requested components
is checked against its size and sha256 before anything is returned, so a missing, truncated or altered file
raises :class:`~chorus.shared.contract.errors.ArtifactError` and is never served. ``CURRENT`` must name a plain version
directory of the root (:func:`check_version_name`): never a path, a parent or hidden directory, or bytes that are
not UTF-8 text.

Arrays are read into private memory, never memory-mapped: a served array is a copy that nothing done to the file
afterwards (truncated, rewritten, deleted) can change or turn into a ``SIGBUS``. The cost is the arrays' bytes in
each process's own memory where a map could have shared the page cache (README, "Artifacts", has the figures).
With ``ArtifactStore.open(load=True)`` each file is read once: its size, sha256, ``.npy`` header (shape and dtype
as the manifest says, no pickles) and content (every float finite) are checked on the bytes that are then
served, so a file changed between the check and the load cannot slip through.

The store knows nothing of what the arrays mean: each component's serializer lives beside its model (the ``data``
component's in :mod:`chorus.shared.data.component`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from chorus.shared.contract.errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
DEFAULT_KEEP = 5


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def new_version_name() -> str:
    """Sortable by creation time: ``20261127T010203.123456Z-1a2b``."""
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(2)}"


def file_fingerprint(path: str | os.PathLike[str], format: str) -> dict[str, Any]:
    """Identify a data file by content: sha256, size, name and format."""
    p = Path(path)
    return {"sha256": _sha256(p), "bytes": p.stat().st_size, "name": p.name, "format": format}


class VersionWriter:
    """Write one version; nothing is visible to loaders until :meth:`commit`.

    Use as a context manager: leaving the block with an exception removes the temporary directory.
    """

    def __init__(self, root: str | os.PathLike[str], version: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.version = version or new_version_name()
        if (self.root / self.version).exists():
            raise ArtifactError(f"version {self.version} already exists in {self.root}")
        # the writer's host and pid, so prune() can tell a dead writer's leftovers from a live one's work
        self.tmp = self.root / f".tmp-{self.version}@{socket.gethostname()}-pid{os.getpid()}"
        self.tmp.mkdir()
        self.manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "dataset": {},
            "components": {},
        }
        self.committed = False

    def _component(self, component: str) -> dict[str, Any]:
        components: dict[str, dict[str, Any]] = self.manifest["components"]
        return components.setdefault(component, {"files": {}, "hyperparameters": {}, "metrics": {}})

    def save_array(self, component: str, name: str, array: np.ndarray) -> None:
        """Write ``array`` as ``<component>/<name>.npy`` (no pickles: object arrays are refused)."""
        arr = np.asarray(array)
        if arr.dtype == object:
            raise ArtifactError(f"{component}/{name}: object arrays cannot be stored; convert to str or numbers")
        folder = self.tmp / component
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.npy"
        with open(path, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        self._component(component)["files"][name] = {
            "path": f"{component}/{name}.npy",
            "sha256": _sha256(path),
            "bytes": path.stat().st_size,
            "shape": list(arr.shape),
            "dtype": arr.dtype.str,
        }

    def set_component_meta(
        self,
        component: str,
        hyperparameters: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """Record what was trained: hyperparameters, metrics and any other JSON-able facts."""
        comp = self._component(component)
        if hyperparameters is not None:
            comp["hyperparameters"] = hyperparameters
        if metrics is not None:
            comp["metrics"] = metrics
        comp.update(extra)

    def set_dataset(self, fingerprint: dict[str, Any], stats: dict[str, Any]) -> None:
        self.manifest["dataset"] = {"fingerprint": fingerprint, "stats": stats}

    def adopt_component(self, source: Version, component: str) -> None:
        """Carry a verified component of another version over unchanged (hard links where possible)."""
        meta = source.manifest["components"][component]
        folder = self.tmp / component
        folder.mkdir(exist_ok=True)
        for info in meta["files"].values():
            src, dst = source.path / info["path"], self.tmp / info["path"]
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        self.manifest["components"][component] = json.loads(json.dumps(meta))
        self.manifest["components"][component]["adopted_from"] = source.name

    def commit(self, make_current: bool = True, keep: int = DEFAULT_KEEP) -> str:
        """Publish the version: manifest, rename into place, then point CURRENT at it; prune old versions."""
        if not self.manifest["components"]:
            raise ArtifactError("refusing to publish a version with no components")
        for component in self.manifest["components"]:
            _fsync_dir(self.tmp / component)
        _write_atomic(self.tmp / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True).encode())
        final = self.root / self.version
        os.rename(self.tmp, final)
        _fsync_dir(self.root)
        self.committed = True
        if make_current:
            set_current(self.root, self.version)
            prune(self.root, keep=keep)
        return self.version

    def abort(self) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> VersionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()


def set_current(root: str | os.PathLike[str], version: str) -> None:
    """Point CURRENT at ``version`` (which must be a complete version of this root) atomically."""
    root = Path(root)
    if version not in list_versions(root):
        raise ArtifactError(f"cannot make {version} current: {root / version} is not a complete version")
    _write_atomic(root / CURRENT, (version + "\n").encode())


def list_versions(root: str | os.PathLike[str]) -> list[str]:
    """Complete versions (those with a manifest), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def prune(root: str | os.PathLike[str], keep: int = DEFAULT_KEEP) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the current one) and abandoned temporary
    directories; return the names removed."""
    root = Path(root)
    current = _current_or_none(root)
    versions = list_versions(root)
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != current]
    for v in doomed:
        shutil.rmtree(root / v, ignore_errors=True)
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(".tmp-") and _abandoned(p):
            shutil.rmtree(p, ignore_errors=True)
            doomed.append(p.name)
    return doomed


ABANDONED_AFTER = 24 * 3600


def _abandoned(tmp: Path) -> bool:
    """Whether a temporary version directory's writer is gone: on this host, when its pid no longer exists;
    written from another host or container (whose pids mean nothing here), when it is a day old."""
    try:
        age = dt.datetime.now().timestamp() - tmp.stat().st_mtime
    except FileNotFoundError:
        return False
    host, _, pid_text = tmp.name.rpartition("@")[2].rpartition("-pid")
    if host != socket.gethostname() or not pid_text.isdigit():
        return age > ABANDONED_AFTER
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


#: Longest ``CURRENT`` file read (a version name is a few dozen characters; anything longer is not one).
MAX_CURRENT_BYTES = 1024


def check_version_name(name: str, root: str | os.PathLike[str] = ".") -> str:
    """``name`` if it can name a version directory of ``root``: one path component, not hidden, printable.

    Raises
    ------
    ArtifactError : an empty name, an absolute or relative path (``/``, ``\\``, ``..``), a hidden or temporary
        directory (leading ``.``), or control characters; the message says which.
    """
    problem = None
    if not name:
        problem = "an empty name"
    elif "/" in name or "\\" in name or os.path.isabs(name):
        problem = "a path, not a directory name"
    elif name.startswith("."):
        problem = "a parent, hidden or temporary directory"
    elif not name.isprintable():
        problem = "control characters"
    if problem:
        raise ArtifactError(f"{Path(root) / CURRENT} names {name[:80]!r}, {problem}: it must name a version directory")
    return name


def read_current(root: str | os.PathLike[str]) -> str | None:
    """The version ``CURRENT`` names, None when there is no ``CURRENT`` (or it is empty).

    Raises
    ------
    ArtifactError : ``CURRENT`` is not UTF-8 text, too long, or does not name a plain version directory
        (:func:`check_version_name`).
    """
    path = Path(root) / CURRENT
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CURRENT_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_CURRENT_BYTES:
        raise ArtifactError(f"{path} holds more than {MAX_CURRENT_BYTES} bytes: not a version name")
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ArtifactError(f"{path} is not UTF-8 text ({raw[:16]!r}...): not a version name") from None
    return check_version_name(name, root) if name else None


def _current_or_none(root: Path) -> str | None:
    """``read_current``, with an unusable ``CURRENT`` taken as none (for pruning, which must not fail on it)."""
    try:
        return read_current(root)
    except ArtifactError:
        return None


class Version:
    """A verified, read-only version. Arrays are read into private memory on first use (or all at once by
    ``ArtifactStore.open(load=True)``), checked (:func:`_read_array`) and cached."""

    def __init__(self, path: Path, manifest: dict[str, Any], verify: bool = True) -> None:
        self.path = path
        self.name = path.name
        self.manifest = manifest
        self.verify = verify
        self._arrays: dict[tuple[str, str], np.ndarray] = {}

    @property
    def components(self) -> list[str]:
        return sorted(self.manifest["components"])

    def component_meta(self, component: str) -> dict[str, Any]:
        try:
            return cast(dict[str, Any], self.manifest["components"][component])
        except KeyError:
            raise ArtifactError(f"version {self.name} has no {component!r} component") from None

    def has_array(self, component: str, name: str) -> bool:
        return name in self.component_meta(component)["files"]

    def array(self, component: str, name: str) -> np.ndarray:
        """The array ``<component>/<name>`` (read-only, in this process's memory).

        Raises
        ------
        ArtifactError : no such array, or a file that fails a check of :func:`_read_array`.
        """
        key = (component, name)
        if key not in self._arrays:
            files = self.component_meta(component)["files"]
            if name not in files:
                raise ArtifactError(f"version {self.name}: component {component!r} has no array {name!r}")
            info = files[name]
            self._arrays[key] = _read_array(
                self.name, self.path / info["path"], f"{component}/{name}", info, self.verify
            )
        return self._arrays[key]

    def load(self, components: list[str]) -> None:
        """Read and check every array of ``components`` now."""
        for component in components:
            for name in self.component_meta(component)["files"]:
                self.array(component, name)


class ArtifactStore:
    """Read side of an artifact root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def current(self) -> str | None:
        return read_current(self.root)

    def versions(self) -> list[str]:
        return list_versions(self.root)

    def open(
        self,
        version: str | None = None,
        components: tuple[str, ...] | list[str] | None = None,
        verify: bool = True,
        *,
        load: bool = False,
    ) -> Version:
        """Open ``version`` (default: CURRENT), checking the manifest and, when ``verify``, every file of
        ``components`` (default: all) against its size, sha256, shape and dtype.

        ``load``: read every array of ``components`` into memory now, checking each on the bytes read (one read
        per file; what a service does before it swaps a version in). Without it the files are checked on disk
        and arrays are read on first use."""
        if version is not None:
            check_version_name(version, self.root)
        if version is None:
            version = self.current()
            if version is None:
                raise ArtifactError(
                    f"no version to serve: {self.root / CURRENT} does not exist yet (run `chorus train`)"
                )
        path = self.root / version
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"version {version} is incomplete or missing: no {manifest_path}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"version {version}: unreadable manifest ({exc})") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(
                f"version {version}: format_version {manifest.get('format_version')!r}, "
                f"this Chorus reads {FORMAT_VERSION}"
            )
        have = manifest.get("components", {})
        wanted = list(have) if components is None else list(components)
        missing = [c for c in wanted if c not in have]
        if missing:
            raise ArtifactError(
                f"version {version} lacks the component(s) {', '.join(missing)} "
                f"(it has {', '.join(sorted(have)) or 'none'})"
            )
        opened = Version(path, manifest, verify=verify)
        if load:
            opened.load(wanted)
        elif verify:
            for component in wanted:
                for name, info in have[component]["files"].items():
                    _verify_file(version, path / info["path"], f"{component}/{name}", info)
        return opened


def _verify_file(version: str, path: Path, label: str, info: dict[str, Any]) -> None:
    if not path.is_file():
        raise ArtifactError(f"version {version}: file {label} is missing ({path})")
    size = path.stat().st_size
    if size != info["bytes"]:
        raise ArtifactError(
            f"version {version}: file {label} is truncated or altered ({size} bytes, manifest says {info['bytes']})"
        )
    if _sha256(path) != info["sha256"]:
        raise ArtifactError(f"version {version}: file {label} fails its checksum (altered or corrupt)")
    with open(path, "rb") as f:
        _read_header(version, f, label, info)


def _read_header(
    version: str, f: io.BufferedIOBase | io.BytesIO, label: str, info: dict[str, Any]
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The ``.npy`` header read from ``f`` (shape, Fortran order, dtype), checked against the manifest."""
    try:
        major, _ = np.lib.format.read_magic(f)
        if major not in (1, 2):
            raise ValueError(f"format version {major}")
        header = np.lib.format.read_array_header_1_0(f) if major == 1 else np.lib.format.read_array_header_2_0(f)
    except ValueError as exc:
        raise ArtifactError(f"version {version}: file {label} is not a valid .npy ({exc})") from exc
    shape, fortran, dtype = header
    if list(shape) != info["shape"] or dtype.str != info["dtype"]:
        raise ArtifactError(
            f"version {version}: file {label} has shape {list(shape)} {dtype.str}, "
            f"manifest says {info['shape']} {info['dtype']}"
        )
    if dtype.hasobject:
        raise ArtifactError(f"version {version}: file {label} holds Python objects (pickles are never loaded)")
    return shape, fortran, dtype


#: The longest ``.npy`` header read (numpy writes a few hundred bytes; format 2 allows up to 4 GiB).
MAX_HEADER_BYTES = 1 << 16


def _read_array(version: str, path: Path, label: str, info: dict[str, Any], verify: bool) -> np.ndarray:
    """The array stored in ``path``, read into private memory (never mapped), checked on the bytes read: size,
    sha256 (when ``verify``), header (shape and dtype as the manifest says) and content (every float finite).

    Raises
    ------
    ArtifactError : a missing, truncated, altered or malformed file, or NaN or infinite values.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != info["bytes"]:
                raise ArtifactError(
                    f"version {version}: file {label} is truncated or altered ({size} bytes, "
                    f"manifest says {info['bytes']})"
                )
            buf = np.empty(size, dtype=np.uint8)
            view, got = buf.data, 0
            while got < size and (n := f.readinto(view[got:])):
                got += n
    except FileNotFoundError:
        raise ArtifactError(f"version {version}: file {label} is missing ({path})") from None
    except OSError as exc:
        raise ArtifactError(f"version {version}: file {label} cannot be read ({exc})") from exc
    if got != size:
        raise ArtifactError(f"version {version}: file {label} shrank while it was read ({got} of {size} bytes)")
    if verify and hashlib.sha256(buf.data).hexdigest() != info["sha256"]:
        raise ArtifactError(f"version {version}: file {label} fails its checksum (altered or corrupt)")
    head = io.BytesIO(buf[:MAX_HEADER_BYTES].tobytes())
    shape, fortran, dtype = _read_header(version, head, label, info)
    offset, count = head.tell(), int(np.prod(shape))
    if size - offset != count * dtype.itemsize:
        raise ArtifactError(
            f"version {version}: file {label} holds {size - offset} bytes of data, its header needs "
            f"{count * dtype.itemsize}"
        )
    array = buf[offset:].view(dtype).reshape(shape, order="F" if fortran else "C")
    array.flags.writeable = False
    if dtype.kind in "fc" and count:
        bad = count - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ArtifactError(
                f"version {version}: file {label} holds {bad} non-finite value(s) (NaN or infinity); "
                "a version with them is never served"
            )
    return array

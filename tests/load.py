"""Background load for the retraining tests: clients that GET a few routes in turn until stopped."""

from __future__ import annotations

import threading
from typing import Any

import httpx


class Load:
    """``clients`` threads GETting ``requests`` ((path, params) pairs) in turn from ``base_url`` while the block
    runs; ``failures`` lists every answer that was not 200 and every transport error, ``versions`` every
    ``X-Model-Version`` seen, in order."""

    def __init__(
        self, base_url: str, requests: list[tuple[str, dict[str, Any]]], clients: int = 1, timeout: float = 15
    ):
        self.base_url, self.requests, self.timeout = base_url, requests, timeout
        self.failures: list[str] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"load-{i}") for i in range(clients)]

    def _loop(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            while not self._stop.is_set():
                for path, params in self.requests:
                    try:
                        r = client.get(path, params=params)
                        if r.status_code != 200:
                            self.failures.append(f"{path}: {r.status_code} {r.text[:200]}")
                        self.versions.append(r.headers.get("X-Model-Version", ""))
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{path}: {exc!r}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

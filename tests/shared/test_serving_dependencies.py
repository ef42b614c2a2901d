"""The service shell's dependencies (the event store of the rating service): started before the first version
loads, shown in ``/readyz`` without ever making the service unready, closed at shutdown."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.shared.test_serving import AUTH, make_app, publish


class Recorder:
    """A dependency that records what the shell asked of it, and reports the state it is told to."""

    name = "thing"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.state = "ok"

    def start(self) -> None:
        self.calls.append("start")

    def readiness(self, details: bool) -> dict[str, Any]:
        return {"status": self.state} | ({"detail": "why"} if details else {})

    def close(self) -> None:
        self.calls.append("close")


def test_a_dependency_is_started_shown_in_readiness_and_closed(tmp_path):
    version = publish(tmp_path, 2.0)
    thing = Recorder()
    app = make_app(tmp_path, [thing])
    with TestClient(app) as client:
        assert thing.calls == ["start"] and app.state.thing is thing
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "version": version, "fallback": False, "thing": {"status": "ok"}}
        thing.state = "unavailable"
        ready = client.get("/readyz", headers=AUTH)
        assert ready.status_code == 200 and ready.json()["thing"] == {"status": "unavailable", "detail": "why"}
        assert client.get("/value").json() == {"value": 2.0}
    assert thing.calls == ["start", "close"]

"""`chorus up` with an event store: the store's URL reaches every service, the gateway gets API keys (one made on
first start, kept in a 0600 file and reused), and ``--retrain-every`` retrains when new events arrived."""

from __future__ import annotations

import re
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from chorus.shared.artifacts import ArtifactStore, read_current
from chorus.shared.data.component import load_data_component
from chorus.shared.events.rows import CUTOFF_KEY
from chorus.shared.events.store import EventStore, new_event, sqlite_url
from tests.e2e.test_up import up_process, wait_for  # noqa: F401 - the fixture, used by name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


def stop(up) -> None:
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(30) == 0


def banner_key(out: str) -> str:
    found = re.search(r"^  API key   (\S+)  \(kept in (.+)\)$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def test_the_key_is_made_once_kept_0600_and_reused_and_the_store_reaches_every_service(
    up_process,  # noqa: F811
    store_url,
    tmp_path,
):
    artifacts = tmp_path / "artifacts"
    postgres = store_url.startswith("postgresql")
    key_path = (artifacts if postgres else tmp_path) / "api-key"  # in the artifact root, or beside a SQLite file

    up = up_process(artifacts=artifacts, extra=["--events-url", store_url], env={"CHORUS_API_KEYS": ""})
    up.wait_for_line("Ctrl-C stops every service")
    key = banner_key(up.out)
    assert f"made an API key for the gateway, kept in {key_path} (mode 0600)" in up.out
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and key_path.read_text() == key + "\n"
    assert len(key) >= 40 and f'curl -H "Authorization: Bearer {key}"' in up.out
    gateway, similarity, rating = (environ(up.child(s)) for s in ("gateway", "similarity", "rating"))
    assert gateway["CHORUS_API_KEYS"] == key
    assert "CHORUS_API_KEYS" not in similarity and "CHORUS_API_KEYS" not in rating
    assert gateway["CHORUS_EVENTS_URL"] == similarity["CHORUS_EVENTS_URL"] == rating["CHORUS_EVENTS_URL"] == store_url
    # the first training took the store's events (none yet): the version records its cutoff
    assert ArtifactStore(artifacts).open(components=[], verify=False).manifest[CUTOFF_KEY] == 0
    stop(up)

    written = key_path.stat().st_mtime_ns
    again = up_process(artifacts=artifacts, extra=["--events-url", store_url], env={"CHORUS_API_KEYS": ""})
    again.wait_for_line("Ctrl-C stops every service")
    assert banner_key(again.out) == key and "made an API key" not in again.out
    assert environ(again.child("gateway"))["CHORUS_API_KEYS"] == key
    stop(again)

    given = up_process(artifacts=artifacts, extra=["--events-url", store_url], env={"CHORUS_API_KEYS": "k1,k2"})
    given.wait_for_line("Ctrl-C stops every service")
    assert "API keys  from CHORUS_API_KEYS" in given.out and key not in given.out
    assert environ(given.child("gateway"))["CHORUS_API_KEYS"] == "k1,k2"
    stop(given)
    assert key_path.stat().st_mtime_ns == written and key_path.read_text() == key + "\n"


def test_retrain_every_trains_on_new_events_and_the_services_switch(up_process, tmp_path):  # noqa: F811
    artifacts = tmp_path / "artifacts"
    up = up_process(artifacts=artifacts, extra=["--retrain-every", "1s"], env={"CHORUS_EVENTS_URL": ""})
    up.wait_for_line("Ctrl-C stops every service")
    assert "retrain   every 1s, on new events" in up.out
    first = read_current(artifacts)
    time.sleep(2.5)  # two checks with nothing new: no retraining
    assert "retraining:" not in up.out

    store = EventStore(sqlite_url(artifacts / "events.db"))  # the default store, made on first start
    store.append([new_event("newcomer", "B0NEWITEM", "rating", 5.0, timestamp=1.7e9)])
    cutoff = store.last_seq()
    store.close()
    up.wait_for_line("retrained: version", timeout=150)
    assert f"retraining: the event store is at seq {cutoff}, version {first} at 0" in up.out
    second = read_current(artifacts)
    assert second != first and f"retrained: version {second} is current" in up.out
    version = ArtifactStore(artifacts).open(second)
    assert version.manifest[CUTOFF_KEY] == cutoff and version.manifest["events"]["event_rows"] == 1
    assert "newcomer" in load_data_component(version).user_ids.tolist()

    def serving(name: str) -> bool:
        ready = httpx.get(f"{up.url}/readyz", timeout=5).json()
        return all((svc or {}).get("version") == name for svc in ready.get("services", {}).values())

    assert second is not None
    wait_for(lambda: serving(second), 60, "the services did not switch to the retrained version")
    time.sleep(2.5)  # nothing new since: no second retraining
    assert up.out.count("retraining:") == 1 and up.proc.poll() is None
    stop(up)


def test_up_refuses_an_unreachable_store_before_training(up_process, tmp_path):  # noqa: F811
    up = up_process(extra=["--events-url", "postgresql://nobody:secret@127.0.0.1:1/chorus"])
    assert up.proc.wait(60) == 1
    wait_for(lambda: "cannot open the event store" in up.out, 5, up.out)
    assert "secret" not in up.out and not (tmp_path / "artifacts").exists()


def test_a_sqlite_store_is_created_on_first_start(tmp_path):
    from chorus.launcher import default_events_url
    from chorus.training.events import open_store

    url = default_events_url(tmp_path / "artifacts")
    assert url == sqlite_url(tmp_path / "artifacts" / "events.db")
    store = open_store(url, create=True)
    try:
        assert store.last_seq() == 0 and (tmp_path / "artifacts" / "events.db").is_file()
        with store.engine.connect() as conn:
            assert "chorus_events" in sa.inspect(conn).get_table_names()
    finally:
        store.close()

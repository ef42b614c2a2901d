"""The compose stack for real: the user's story through the published gateway, retraining under load, a dead
service, a missing Redis, and what the containers run as and publish. The tests share one stack and run in
file order; each leaves it serving."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.load import Load

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

NO_CACHE = {"Cache-Control": "no-cache"}


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return result


def test_the_users_story_through_the_published_gateway(stack):
    data = stack.data
    r = stack.get("/v1/items", q=data.word)
    assert r.status_code == 200 and r.json()["count"] > 0, r.text

    r = stack.get(f"/v1/items/{data.item}/similar", k=5, measure="jaccard")
    assert r.status_code == 200, r.text
    similar = r.json()
    assert similar["item_id"] == data.item and 0 < similar["count"] <= 5
    assert r.headers["X-Cache"] == "miss" and r.headers["X-Model-Version"]

    r = stack.get(f"/v1/users/{data.user}/recommendations", k=5)
    assert r.status_code == 200 and len(r.json()["data"]) == 5, r.text
    r = stack.get("/v1/predict", user_id=data.user, item_id=r.json()["data"][0]["item_id"])
    assert r.status_code == 200 and 1.0 <= r.json()["prediction"] <= 5.0, r.text

    again = stack.get(f"/v1/items/{data.item}/similar", k=5, measure="jaccard")
    assert again.headers["X-Cache"] == "hit" and again.json() == similar
    keys = stack.compose("exec", "-T", "redis", "redis-cli", "--scan", "--pattern", "chorus:*").stdout.split()
    assert any(f"items%2F{data.item}%2Fsimilar" in key or f"items/{data.item}/similar" in key for key in keys), keys


def test_events_in_postgresql_change_answers_at_once_survive_a_killed_store_and_forget(stack):
    """The live-feedback story in the compose stack: events posted through the gateway land in the PostgreSQL
    service, a new user's recommendations react at once (through the Redis cache, no header), a kill -9 of the
    database loses no acknowledged event, and forgetting a known user makes them unknown at once."""
    popular = stack.get("/v1/users/newcomer-1/recommendations", k=5).json()
    assert popular["fallback"] == "popular", popular
    liked = [d["item_id"] for d in stack.get(f"/v1/items/{stack.data.item}/similar", k=3).json()["data"]]
    events = [
        {"event_id": f"c-{i}", "user_id": "newcomer-1", "item_id": item, "kind": "rating", "rating": 5}
        for i, item in enumerate([stack.data.item, *liked])
    ]
    r = stack.with_key("POST", "/v1/events", json={"events": events})
    assert r.status_code == 200 and r.json() == {"stored": len(events), "duplicates": 0}, r.text
    assert stack.with_key("POST", "/v1/events", json={"events": events}).json()["duplicates"] == len(events)
    assert stack.get("/v1/events").status_code in (404, 405)  # no listing of everyone's events
    assert httpx.post(stack.url + "/v1/events", json={"events": events}, timeout=10).status_code == 401

    live = stack.get("/v1/users/newcomer-1/recommendations", k=5)
    body = live.json()
    assert live.status_code == 200 and body["fallback"] is None, body
    assert not {d["item_id"] for d in body["data"]} & {e["item_id"] for e in events}  # acted on: left out

    # kill -9 the database and start it again on its named volume: every acknowledged event is there (`docker
    # kill` marks the container stopped by hand, so the restart policy leaves the start to us)
    database = stack.container("postgres")
    stack.docker("kill", "-s", "KILL", database)
    stack.docker("start", database)
    listed = wait_for(
        lambda: (r := stack.with_key("GET", "/v1/users/newcomer-1/events")).status_code == 200 and r.json(),
        120,
        "the event store did not come back after kill -9",
    )
    assert sorted(e["event_id"] for e in listed["data"]) == sorted(e["event_id"] for e in events)

    known = stack.data.other_user
    assert stack.get(f"/v1/users/{known}/recommendations", k=5).json()["fallback"] is None
    assert stack.with_key("DELETE", f"/v1/users/{known}").status_code == 200
    forgotten = stack.get(f"/v1/users/{known}/recommendations", k=5).json()
    assert forgotten["fallback"] == "popular", forgotten


def test_containers_run_as_non_root_and_only_the_gateway_publishes_a_port(stack):
    for service in ("redis", "similarity", "rating", "gateway"):
        container = stack.container(service)
        uids = stack.docker("top", container, "-eo", "pid,uid,comm").splitlines()[1:]
        assert uids and all(int(line.split()[1]) != 0 for line in uids), (service, uids)
        ports = stack.docker("port", container).strip()
        if service == "gateway":
            assert ports.startswith("8000/tcp -> ") and ports.splitlines()[0].endswith(f":{stack.port}"), ports
        else:
            assert ports == "", (service, ports)


def test_retraining_under_load_fails_no_request(stack):
    before = stack.get("/v1/stats").headers["X-Model-Version"]
    item, user = stack.data.item, stack.data.user
    requests = [(f"/v1/items/{item}/similar", {"k": 5}), ("/v1/predict", {"user_id": user, "item_id": item})]
    with Load(stack.url, requests, clients=4, timeout=10) as load:
        stack.compose("run", "--rm", "-e", "CHORUS_RETRAIN=1", "trainer", timeout=600)
        trained = time.monotonic()
        wait_for(lambda: load.versions[-1] not in ("", before), 30, "no answer from the new version")
        switched = time.monotonic() - trained
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert len(load.versions) > 50 and load.versions[-1] != before
    print(
        f"{len(load.versions)} requests during retraining, none failed; the new version answered {switched:.1f} s after"
    )
    assert switched < 15


def test_a_killed_rating_service_costs_only_the_rating_routes(stack):
    gateway = json.loads(stack.docker("inspect", stack.container("gateway")))[0]
    predict = {"user_id": stack.data.user, "item_id": stack.data.item}
    stack.compose("kill", "rating")
    killed = time.monotonic()
    r = wait_for(
        lambda: (
            (x := httpx.get(stack.url + "/v1/predict", params=predict, headers=NO_CACHE, timeout=5)).status_code == 503
            and x
        ),
        2,
        "rating routes did not answer 503 within 2 s",
    )
    print(f"503 after {time.monotonic() - killed:.2f} s")
    assert r.headers["content-type"].startswith("application/json") and "rating" in r.json()["detail"]
    similar = httpx.get(stack.url + f"/v1/items/{stack.data.item}/similar", headers=NO_CACHE, timeout=5)
    assert similar.status_code == 200

    # a killed container counts as stopped by hand, which restart policies leave alone: start it as an operator would
    time.sleep(3)
    running = stack.docker("inspect", "-f", "{{.State.Running}}", stack.container("rating")).strip() == "true"
    print("the restart policy brought rating back" if running else "docker-compose start rating")
    if not running:
        stack.compose("start", "rating")
    wait_for(
        lambda: httpx.get(stack.url + "/v1/predict", params=predict, headers=NO_CACHE, timeout=5).status_code == 200,
        120,
        "the rating routes did not come back",
    )
    after = json.loads(stack.docker("inspect", stack.container("gateway")))[0]
    assert (after["Id"], after["State"]["StartedAt"]) == (gateway["Id"], gateway["State"]["StartedAt"])


def test_a_crashed_service_is_restarted_by_the_restart_policy(stack):
    container = stack.container("rating")
    restarts = int(stack.docker("inspect", "-f", "{{.RestartCount}}", container))
    # the process itself exits (not `docker kill`): `restart: unless-stopped` brings the container back
    stack.compose("exec", "-T", "rating", "python", "-c", "import os, signal; os.kill(1, signal.SIGTERM)")
    wait_for(
        lambda: int(stack.docker("inspect", "-f", "{{.RestartCount}}", container)) > restarts,
        30,
        "docker did not restart the rating container",
    )
    predict = {"user_id": stack.data.user, "item_id": stack.data.item}
    wait_for(
        lambda: httpx.get(stack.url + "/v1/predict", params=predict, headers=NO_CACHE, timeout=5).status_code == 200,
        120,
        "the rating routes did not come back",
    )


def test_without_redis_answers_continue_uncached_and_caching_resumes(stack):
    path = f"/v1/items/{stack.data.item}/similar"
    stack.compose("stop", "redis")
    try:
        for k in (3, 3):
            r = stack.get(path, k=k)
            assert r.status_code == 200 and r.headers["X-Cache"] == "bypass", (r.status_code, r.headers)
    finally:
        stack.compose("start", "redis")
    wait_for(lambda: stack.get(path, k=3).headers["X-Cache"] == "hit", 60, "caching did not resume")

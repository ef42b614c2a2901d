"""`chorus up`'s supervisor on fake processes and a fake clock: who is restarted, when, and what it says."""

from __future__ import annotations

from dataclasses import dataclass, field

from chorus.launcher import BACKOFF_MAX, STABLE_AFTER, Supervisor, backoff


@dataclass
class FakeProc:
    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


@dataclass
class FakeTopology:
    procs: dict[str, FakeProc] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    def start(self, service: str) -> None:
        self.started.append(service)
        self.procs[service] = FakeProc(pid=100 + len(self.started))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make():
    topo = FakeTopology({name: FakeProc(pid=i) for i, name in enumerate(("similarity", "rating", "gateway"))})
    clock = Clock()
    said: list[str] = []
    supervisor = Supervisor(topo, log=said.append, clock=clock)  # type: ignore[arg-type]
    supervisor.watch()
    return topo, clock, said, supervisor


def test_backoff_doubles_from_one_second_up_to_thirty():
    assert [backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert BACKOFF_MAX == 30


def test_only_the_dead_service_is_restarted_after_its_delay():
    topo, clock, said, supervisor = make()
    clock.now = 5.0
    topo.procs["rating"].returncode = -9
    supervisor.check()
    assert said == ["the rating service exited with code -9 after 5 s; restarting it in 1 s"]
    clock.now = 5.9
    supervisor.check()
    assert topo.started == []  # not before its delay
    clock.now = 6.0
    supervisor.check()
    assert topo.started == ["rating"] and said[-1] == "restarted the rating service (pid 101)"
    supervisor.check()
    assert topo.started == ["rating"]  # running again: nothing to do


def test_quick_deaths_in_a_row_wait_longer_and_a_stable_run_resets_the_delay():
    topo, clock, said, supervisor = make()
    delays = []
    for _ in range(7):
        topo.procs["gateway"].returncode = 1
        supervisor.check()
        delays.append(supervisor.due["gateway"] - clock.now)
        clock.now = supervisor.due["gateway"]
        supervisor.check()
        clock.now += 0.5  # dies half a second after each restart
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    clock.now += STABLE_AFTER
    topo.procs["gateway"].returncode = 1
    supervisor.check()
    assert supervisor.due["gateway"] - clock.now == 1
    assert topo.procs["similarity"].poll() is None and "similarity" not in topo.started

"""The CPU thread policy on a busy machine (chainrule.threads): the count, OpenMP's wait policy,
and the revision of a guessed count while a job runs. No timings: the functions, fed fake
``/proc`` files and CPU samples."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from chainrule import threads
from chainrule.threads import (
    ThreadMonitor,
    cpu_sample,
    default_threads,
    prepare_openmp,
    running_elsewhere,
    threads_for,
)


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "chosen_by", threads.chosen_by)
    monkeypatch.setattr(threads, "policy_count", threads.policy_count)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("busy", "cores", "cpus", "expected"),
    [
        (0.0, 2, 2, 2),  # idle two-core box: both
        (0.49, 2, 2, 2),  # a little background work: still both
        (0.51, 2, 2, 1),  # half a core or more taken: one
        (1.0, 2, 2, 1),  # one spinner ("a browser open")
        (25.0, 2, 2, 1),  # far over-subscribed: never below one
        (0.0, 4, 8, 4),  # hyper-threads do not count as cores
        (0.0, 16, 32, 8),  # capped at MAX_DEFAULT_THREADS
        (29.4, 16, 32, 3),  # 32 - 29.4 = 2.6 idle -> 3
    ],
)
def test_threads_for(busy, cores, cpus, expected):
    assert threads_for(busy, cores, cpus) == expected


def fake_proc(tmp_path, loadavg: str, states: list[str], stat: str | None = None):
    (tmp_path / "loadavg").write_text(loadavg)
    for i, state in enumerate(states):
        task = tmp_path / "self" / "task" / str(100 + i)
        task.mkdir(parents=True)
        # the command name may hold spaces and parentheses: the state follows the last ")"
        task.joinpath("stat").write_text(f"{100 + i} (py (th) {i}) {state} 1 2 3 4\n")
    if stat is not None:
        (tmp_path / "stat").write_text(stat)
    return str(tmp_path)


def test_running_elsewhere_takes_off_our_own_running_threads(tmp_path):
    # 5 runnable on the machine; 2 of them are ours (R), one of ours sleeps (S)
    proc = fake_proc(tmp_path, "0.50 0.40 0.30 5/300 4242\n", ["R", "S", "R"])
    assert running_elsewhere(samples=1, proc=proc) == 3.0


def test_running_elsewhere_is_zero_when_only_we_run(tmp_path):
    proc = fake_proc(tmp_path, "1.00 1.00 1.00 1/120 4242\n", ["R"])
    assert running_elsewhere(samples=2, proc=proc) == 0.0


def test_running_elsewhere_without_proc(tmp_path):
    assert running_elsewhere(samples=1, proc=str(tmp_path / "absent")) == 0.0


def test_default_uses_the_larger_of_load_average_and_running_now(monkeypatch):
    # the one-minute average lags: a process started a second ago shows only as running now
    monkeypatch.setattr(os, "getloadavg", lambda: (0.05, 0.0, 0.0))
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 1.0)
    assert default_threads({}, cores=2, cpus=2) == (1, "load")
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 0.0)
    assert default_threads({}, cores=2, cpus=2) == (2, "cores")
    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 0.0, 0.0))  # lagging the other way
    assert default_threads({}, cores=2, cpus=2) == (1, "load")


@pytest.mark.parametrize(("cpu_max", "quota"),
                         [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5),
                          ("garbage", None)])
def test_container_quota_caps_the_cpus(tmp_path, cpu_max, quota):
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert threads.cgroup_cpu_quota(str(tmp_path)) == quota
    mine = threads.usable_cpus(str(tmp_path / "absent"))
    expected = mine if quota is None else max(1, min(mine, -(-quota // 1)))
    assert threads.usable_cpus(str(tmp_path)) == expected


def test_cpu_sample_reads_busy_time(tmp_path):
    # user nice system idle iowait irq softirq steal (ticks); busy = all but idle and iowait
    proc = fake_proc(tmp_path, "0 0 0 1/1 1\n", ["R"],
                     stat="cpu  100 20 30 500 50 5 5 40 0 0\ncpu0 1 2 3 4\n")
    t, busy, own = cpu_sample(proc)
    assert busy == pytest.approx(200 / os.sysconf("SC_CLK_TCK"))
    assert own >= 0 and t > 0
    assert cpu_sample(str(tmp_path / "absent")) is None


class FakeClock:
    """CPU samples: each ``tick(others, ours)`` adds one second of wall time."""

    def __init__(self):
        self.t, self.busy, self.own = 0.0, 0.0, 0.0

    def __call__(self):
        return self.t, self.busy, self.own

    def tick(self, others: float, ours: float = 1.0):
        self.t += 1.0
        self.busy += others + ours
        self.own += ours


def test_monitor_backs_off_when_another_process_starts_and_returns_when_it_stops():
    clock = FakeClock()
    threads.chosen_by, threads.policy_count = "cores", 2
    torch.set_num_threads(2)
    m = ThreadMonitor(cores=2, cpus=2, sample=clock)
    clock.tick(0.0, 2.0)
    assert m.revise() == 2 and m.others == 0.0
    clock.tick(0.7)  # a spinner took 0.7 of a core: wait for a second interval to say so
    assert m.revise() == 2 and torch.get_num_threads() == 2
    clock.tick(1.0)
    assert m.revise() == 1 and torch.get_num_threads() == 1
    clock.tick(0.0)  # it stopped; one quiet interval is not enough
    assert m.revise() == 1
    clock.tick(0.1)
    assert m.revise() == 2 and torch.get_num_threads() == 2


def test_monitor_one_noisy_interval_changes_nothing():
    clock = FakeClock()
    threads.chosen_by, threads.policy_count = "load", 2
    torch.set_num_threads(2)
    m = ThreadMonitor(cores=2, cpus=2, sample=clock)
    for others in (0.0, 1.5, 0.0, 1.5, 0.2):
        clock.tick(others)
        assert m.revise() == 2


def test_monitor_never_overrides_a_count_that_was_asked_for():
    clock = FakeClock()
    threads.chosen_by = "asked"  # --threads 2 (or CHAINRULE_THREADS / OMP_NUM_THREADS)
    torch.set_num_threads(2)
    m = ThreadMonitor(cores=2, cpus=2, sample=clock)
    for _ in range(3):
        clock.tick(1.0)
        assert m.revise() is None
    assert torch.get_num_threads() == 2 and m.others == pytest.approx(1.0)


def test_monitor_leaves_a_count_that_other_code_set_since():
    clock = FakeClock()
    threads.chosen_by, threads.policy_count = "load", 2
    torch.set_num_threads(1)  # e.g. the ladder's timed one-thread probe
    m = ThreadMonitor(cores=2, cpus=2, sample=clock)
    for _ in range(3):
        clock.tick(0.0)
        assert m.revise() is None
    assert torch.get_num_threads() == 1


def test_set_threads_records_the_policy_count(monkeypatch):
    monkeypatch.setenv("CHAINRULE_THREADS", "1")
    assert threads.set_threads() == 1
    assert (threads.chosen_by, threads.policy_count) == ("CHAINRULE_THREADS", 1)


def test_monitor_waits_for_a_long_enough_window():
    clock = FakeClock()
    threads.chosen_by = "cores"
    m = ThreadMonitor(cores=2, cpus=2, sample=clock)
    clock.t += 0.05
    assert m.revise() is None and m.others is None


def test_monitor_off_linux_does_nothing():
    m = ThreadMonitor(cores=2, cpus=2, sample=lambda: None)
    assert m.revise() is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"OMP_WAIT_POLICY": "PASSIVE"}),
        ({"OMP_WAIT_POLICY": "active"}, {}),  # the user's choice is kept
        ({"GOMP_SPINCOUNT": "10000"}, {}),
        ({"KMP_BLOCKTIME": "200"}, {}),
        ({"CHAINRULE_OMP_WAIT": "spin"}, {}),  # OpenMP's own default, on purpose
    ],
)
def test_prepare_openmp(env, expected):
    before = dict(env)
    assert prepare_openmp(env) == expected
    assert env == {**before, **expected}


def test_openmp_sleeps_when_the_command_line_loads_torch():
    """End to end: the command line sets the policy before torch loads its OpenMP runtime,
    which reports it (``OMP_DISPLAY_ENV``, GNU and LLVM OpenMP)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                        "CHAINRULE_OMP_WAIT")}
    env["OMP_DISPLAY_ENV"] = "TRUE"
    code = ("from chainrule.cli import _apply_threads\n_apply_threads('1')\nimport torch\n"
            "torch.ones(1 << 20).sum()\nprint(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    shown = out.stdout + out.stderr
    if "OMP_WAIT_POLICY" not in shown:
        pytest.skip("this torch's OpenMP runtime does not display its settings")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in shown
    assert out.stdout.strip().splitlines()[-1] == "1"

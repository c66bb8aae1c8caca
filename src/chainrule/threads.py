"""How many CPU threads PyTorch uses (the ``chainrule --threads N`` option and its default).

Why a default of our own: PyTorch starts one intra-op thread per physical core whatever else
the machine is doing. chainrule's models are small, and a small op split over threads ends in
a barrier that waits for every thread; when another process holds one of the cores, that wait
is a scheduler time slice. On a busy two-core machine two threads made tiny-model ops 10-50x
slower than one. So the default is the number of physical cores (at most
:data:`MAX_DEFAULT_THREADS`), lowered to the CPUs that other work holds (the one-minute load
average, or the processes running right now if more), and never below one.
``CHAINRULE_THREADS`` or ``OMP_NUM_THREADS`` in the environment win over that guess, and
``--threads N`` over both.

Two more parts of the policy (docs/training.md, "CPU threads on a busy machine"):

* :func:`prepare_openmp` makes OpenMP's idle threads sleep instead of spinning
  (``OMP_WAIT_POLICY=PASSIVE``, read once when PyTorch loads its OpenMP runtime, so it must run
  before ``import torch``; the command line does). With spinning workers, two threads on a
  two-core machine with one other busy process took 30-150x longer per small op (median);
  passive, about as long as one thread. A value the user set is kept.
* :class:`ThreadMonitor` lets a long job (the training loop, every ``log_interval`` steps)
  revise a guessed count from the CPU time other processes actually used meanwhile: one thread
  when another process starts, more again when it stops. A count that was asked for
  (``--threads``, an environment variable) is never revised.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from chainrule.errors import ConfigError

MAX_DEFAULT_THREADS = 8  # beyond this, small models gain nothing and big ones should say so


def parse_threads(value: str | int, where: str = "--threads") -> int:
    """A thread count from the command line or the environment: a whole number, 1 or more.

    >>> parse_threads("4")
    4
    """
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{where} takes a whole number of threads, 1 or more, not {value!r}.")
    return n


def usable_cpus(cgroup: str = "/sys/fs/cgroup") -> int:
    """Logical CPUs this process may run on: its affinity mask where the platform has one,
    lowered to a container's CPU quota (cgroup v2 ``cpu.max``, rounded up) when there is one."""
    try:
        n = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup)
    return max(1, min(n, math.ceil(quota))) if quota else n


def cgroup_cpu_quota(cgroup: str = "/sys/fs/cgroup") -> float | None:
    """CPUs' worth of time a cgroup v2 quota allows (``cpu.max`` "QUOTA PERIOD"), or None.

    >>> cgroup_cpu_quota("/nonexistent") is None
    True
    """
    try:
        with open(f"{cgroup}/cpu.max") as f:
            quota, period = f.read().split()[:2]
        return int(quota) / int(period) if quota != "max" and int(period) > 0 else None
    except (OSError, ValueError):
        return None


def physical_cores() -> int:
    """Physical cores among the usable CPUs (hyper-threads of one core count once).

    Read from Linux's ``/sys`` topology; elsewhere, or if that is unreadable, the logical count.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return usable_cpus()
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                cores.add((topology / name).read_text().strip())
                break
            except OSError:
                continue
        else:
            return len(cpus)
    return len(cores) or len(cpus)


def running_elsewhere(samples: int = 3, proc: str = "/proc") -> float:
    """Threads of other processes running or ready to run right now (Linux; 0.0 elsewhere).

    The fourth field of ``/proc/loadavg`` counts the runnable threads of the whole machine; this
    process's own (``/proc/self/task/*/stat`` in state R) are taken off. The median of a few
    samples 2 ms apart, so a process that only flickers by is not counted. Unlike the load
    average, it sees a process that started a second ago. ``proc`` is for tests.
    """
    seen = []
    for i in range(samples):
        try:
            with open(f"{proc}/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        seen.append(max(0, running - _own_running_threads(proc)))
        if i + 1 < samples:
            time.sleep(0.002)
    return float(sorted(seen)[len(seen) // 2])


def _own_running_threads(proc: str = "/proc") -> int:
    n = 0
    try:
        tasks = os.listdir(f"{proc}/self/task")
    except OSError:
        return 1
    for tid in tasks:
        try:
            with open(f"{proc}/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "R":
            n += 1
    return max(n, 1)  # the thread reading the file is running


def threads_for(busy: float, cores: int, cpus: int) -> int:
    """The policy itself: ``min(cores, 8)`` threads, lowered to the CPUs that ``busy`` (other
    work, in CPUs' worth) leaves idle, rounded, and at least 1.

    >>> threads_for(0.0, 2, 2), threads_for(0.4, 2, 2), threads_for(0.6, 2, 2), threads_for(9, 2, 2)
    (2, 2, 1, 1)
    """
    n = max(1, min(cores, MAX_DEFAULT_THREADS))
    idle = max(1, math.floor(cpus - busy + 0.5))
    return min(n, idle)


def default_threads(environ: Mapping[str, str] | None = None, *, load: float | None = None,
                    cores: int | None = None, cpus: int | None = None) -> tuple[int, str]:
    """The thread count to use when ``--threads`` is not given, and where it came from.

    ``CHAINRULE_THREADS`` (checked: a bad value is an error) and then ``OMP_NUM_THREADS`` (a bad
    value is ignored, as it belongs to OpenMP) win; otherwise :func:`threads_for` with the
    machine's other work taken as the larger of the one-minute load average and
    :func:`running_elsewhere` (``load`` replaces both; ``cores`` and ``cpus`` replace the
    measured values: for tests). The source is "load" when other work lowered the count.

    >>> default_threads({}, load=3.5, cores=2, cpus=2)
    (1, 'load')
    >>> default_threads({}, load=0.1, cores=16, cpus=32)
    (8, 'cores')
    """
    env = os.environ if environ is None else environ
    if env.get("CHAINRULE_THREADS", "").strip():
        return parse_threads(env["CHAINRULE_THREADS"], "CHAINRULE_THREADS"), "CHAINRULE_THREADS"
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    cores = physical_cores() if cores is None else cores
    cpus = usable_cpus() if cpus is None else cpus
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
        load = max(load, running_elsewhere())
    n = threads_for(load, cores, cpus)
    return (n, "load") if n < max(1, min(cores, MAX_DEFAULT_THREADS)) else (n, "cores")


def prepare_openmp(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Make OpenMP's waiting threads sleep, not spin; return what was set (nothing if unneeded).

    Sets ``OMP_WAIT_POLICY=PASSIVE`` unless ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
    ``KMP_BLOCKTIME`` is already set (the user's choice wins). GNU OpenMP (PyTorch's pip
    wheels) and LLVM/Intel OpenMP (``KMP_BLOCKTIME``'s, which passive also sets to 0) read it
    once, when the runtime loads with torch: so this does nothing, and returns ``{}``, once
    ``torch`` is imported. ``CHAINRULE_OMP_WAIT=spin`` keeps OpenMP's own default.

    >>> prepare_openmp({"OMP_WAIT_POLICY": "ACTIVE"})
    {}
    """
    env = os.environ if environ is None else environ
    if environ is None and "torch" in sys.modules:
        return {}
    if env.get("CHAINRULE_OMP_WAIT", "").strip().lower() == "spin":
        return {}
    if any(env.get(k, "").strip() for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        return {}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return {"OMP_WAIT_POLICY": "PASSIVE"}


class ThreadMonitor:
    """Revises a guessed thread count as the machine's other work comes and goes.

    :meth:`revise` (cheap: two small ``/proc`` reads) measures the CPUs' worth of work that
    other processes did since the last revision (busy time in ``/proc/stat``, steal included,
    minus this process's CPU time) and, when the count was guessed (:data:`chosen_by` "cores" or
    "load") and is still the policy's (:data:`policy_count`), sets :func:`threads_for` of it,
    once the same new count came out twice running (so one noisy interval changes nothing). Off Linux it does nothing. ``sample`` replaces
    :func:`cpu_sample` (for tests).
    """

    MIN_WINDOW_S = 0.2  # shorter windows are too coarse (the kernel counts in 10 ms ticks)

    def __init__(self, cores: int | None = None, cpus: int | None = None, sample=None):
        self.cores = physical_cores() if cores is None else cores
        self.cpus = usable_cpus() if cpus is None else cpus
        self.sample = sample or cpu_sample
        self._last = self.sample()
        self._wanted: int | None = None
        self.others: float | None = None  # CPUs' worth of other work in the last window

    def revise(self) -> int | None:
        """Set the revised thread count if it changed (and was a guess); return the count."""
        now = self.sample()
        if now is None or self._last is None:
            return None
        dt = now[0] - self._last[0]
        if dt < self.MIN_WINDOW_S:
            return None
        others = max(0.0, ((now[1] - self._last[1]) - (now[2] - self._last[2])) / dt)
        self._last, self.others = now, others
        global policy_count
        if chosen_by not in ("cores", "load"):
            return None
        import torch

        want = threads_for(others, self.cores, self.cpus)
        current = torch.get_num_threads()
        if current != policy_count:  # set since by other code (a timed probe, the user)
            return None
        if want == current:
            self._wanted = None
            return current
        if self._wanted != want:  # the first interval that says so: wait for a second
            self._wanted = want
            return current
        torch.set_num_threads(want)
        policy_count, self._wanted = want, None
        return want


def cpu_sample(proc: str = "/proc") -> tuple[float, float, float] | None:
    """(monotonic seconds, the machine's busy CPU seconds, this process's CPU seconds) or, where
    there is no ``/proc/stat`` (``proc`` is for tests), None."""
    try:
        with open(f"{proc}/stat") as f:
            fields = f.readline().split()
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = sum(values[3:5])  # idle, iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    t = os.times()
    return time.monotonic(), busy / tick, t.user + t.system


#: how the thread count was chosen by the last :func:`set_threads`: "asked" (``--threads``),
#: an environment variable's name, "cores" or "load" (a guess that a job which measures its own
#: speed, like the ladder's timed rungs, may revise)
chosen_by: str = "torch"
#: the count the policy last set (:func:`set_threads`, :meth:`ThreadMonitor.revise`); a count
#: that code set since with ``torch.set_num_threads`` is that code's, and is not revised
policy_count: int | None = None


def set_threads(n: int | None = None) -> int:
    """Set PyTorch's intra-op threads to ``n`` (``None``: :func:`default_threads`); return it."""
    global chosen_by, policy_count
    if n is None:
        n, chosen_by = default_threads()
    else:
        chosen_by = "asked"
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    policy_count = n
    return n


__all__ = ["MAX_DEFAULT_THREADS", "ThreadMonitor", "cgroup_cpu_quota", "chosen_by", "cpu_sample", "default_threads",
           "parse_threads", "physical_cores", "policy_count", "prepare_openmp", "running_elsewhere", "set_threads",
           "threads_for", "usable_cpus"]

"""How many CPU threads PyTorch uses (the ``chainrule --threads N`` option and its default).

Why a default of our own: PyTorch starts one intra-op thread per physical core whatever else
the machine is doing. chainrule's models are small, and a small op split over threads ends in
a barrier that waits for every thread; when another process holds one of the cores, that wait
is a scheduler time slice. On a busy two-core machine two threads made tiny-model ops 10-50x
slower than one. So the default is the number of physical cores (at most
:data:`MAX_DEFAULT_THREADS`), lowered to the CPUs that the load average says are idle, and
never below one. ``CHAINRULE_THREADS`` or ``OMP_NUM_THREADS`` in the environment win over
that guess, and ``--threads N`` over both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
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


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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


def default_threads(environ: Mapping[str, str] | None = None, *, load: float | None = None,
                    cores: int | None = None, cpus: int | None = None) -> tuple[int, str]:
    """The thread count to use when ``--threads`` is not given, and where it came from.

    ``CHAINRULE_THREADS`` (checked: a bad value is an error) and then ``OMP_NUM_THREADS`` (a bad
    value is ignored, as it belongs to OpenMP) win; otherwise ``min(physical cores, 8)``, lowered
    to the number of idle CPUs (usable CPUs minus the one-minute load average, rounded), at
    least 1. ``load``, ``cores`` and ``cpus`` replace the measured values (for tests).

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
    n = max(1, min(cores, MAX_DEFAULT_THREADS))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    idle = max(1, math.floor(cpus - load + 0.5))
    return (idle, "load") if idle < n else (n, "cores")


#: how the thread count was chosen by the last :func:`set_threads`: "asked" (``--threads``),
#: an environment variable's name, "cores" or "load" (a guess that a job which measures its own
#: speed, like the ladder's timed rungs, may revise)
chosen_by: str = "torch"


def set_threads(n: int | None = None) -> int:
    """Set PyTorch's intra-op threads to ``n`` (``None``: :func:`default_threads`); return it."""
    global chosen_by
    if n is None:
        n, chosen_by = default_threads()
    else:
        chosen_by = "asked"
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


__all__ = ["MAX_DEFAULT_THREADS", "chosen_by", "default_threads", "parse_threads", "physical_cores",
           "set_threads", "usable_cpus"]

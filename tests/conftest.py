"""Suite-wide settings.

Every test runs one intra-op thread. The suite's models are tiny, so a second thread brings no
speed, while ``pytest -n 2`` on 2 cores (or any other load on the box) oversubscribes the CPUs
and each op's OpenMP barrier then waits for a descheduled thread: a tiny GPT's fit took 5-12 s
instead of 0.2 s. ``OMP_NUM_THREADS`` also reaches the ``chainrule`` subprocesses some tests start.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported, and for subprocesses
os.environ["MKL_NUM_THREADS"] = "1"

import torch

torch.set_num_threads(1)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:  # already set, or inter-op work already started in this process
    pass


def pytest_collection_modifyitems(config, items):
    """Run the tests marked ``slow`` first (the sort is stable, so the rest keep their order).

    Under ``pytest -n 2`` a long test started last runs alone at the end while the other worker
    idles: the subprocess tests of ``test_training_processes.py`` ended the run that way. Started
    first, they overlap with the many short tests instead.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

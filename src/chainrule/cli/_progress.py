"""Progress of long command-line jobs: a bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

log = logging.getLogger("chainrule")


@contextlib.contextmanager
def counter(total: int, desc: str, unit: str = "tok", min_total: int = 1) -> Iterator[
        Callable[..., None] | None]:
    """Yield a callable that counts ``n`` units (default one) of ``total``; None when the job
    is too small (``total < min_total``) to be worth showing. On a terminal it draws a tqdm bar
    on stderr; elsewhere (a log file, a notebook's captured stderr) it logs a line at every
    tenth."""
    if total < min_total:
        yield None
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr) as bar:
            yield lambda n=1: bar.update(n)
        return
    state = {"done": 0, "next": max(1, total // 10)}

    def tick(n: int = 1) -> None:
        state["done"] += n
        if state["done"] >= state["next"]:
            log.info(f"{desc}: {min(state['done'], total):,} / {total:,} {unit}")
            step = max(1, total // 10)
            while state["next"] <= state["done"]:  # a batch may pass several tenths at once
                state["next"] += step

    yield tick

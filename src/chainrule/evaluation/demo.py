"""``chainrule demo``: tokenizers and a small model ladder on the bundled Tiny Shakespeare.

The budget: at most 5 minutes on 2 CPU cores. The corpus is split by lines (80/10/10,
contiguous), the ladder is word level with words seen fewer than 3 times mapped to ``<unk>``,
and each neural rung trains for a fixed number of steps (:data:`DEMO_PLAN`) on one thread,
seeded, with its validation perplexity checked :data:`DEMO_CHECKS` times and the best
checkpoint kept (:mod:`chainrule.evaluation.ladder_plan`): the same numbers on every run and
every machine. The neural rungs train in one process per usable CPU at once
(:mod:`chainrule.evaluation.ladder_lanes`; the figures do not change with it). A wall-time cap
(:data:`DEMO_CAP_SECONDS`) is only a safety net for a very slow or busy machine; a rung it cuts
short says so in the report.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

from chainrule.errors import DataError
from chainrule.evaluation.ladder import DEFAULT_RUNGS, LadderConfig

DEMO_WORDS = ["Shakespeare", "wherefore", "unkindness", "gentlemen", "thou"]
DEMO_NEURAL_SECONDS = 40.0  # --budget 40s: the old wall-time budget per neural rung
DEMO_MAX_STEPS = 20_000  # with a wall-time budget, only a fast machine reaches this
# The step plan: optimiser steps per neural rung. On two cores the rungs train in two processes
# at once (evaluation/ladder_lanes.py: ffnn -> lstm | gpt), and each lane fits the cap below on a
# quiet 2-core CPU at one thread (FFNN 36, LSTM 31 with its reset at <s>, GPT 43 steps/s there:
# ~175 s and ~185 s). Test perplexity: FFNN 69.4, LSTM 62.4, GPT 66.5, all below KN5's 71.4
# (bench/RESULTS.md, "Demo"); one process (one core) takes ~6 minutes and the cap cuts it.
DEMO_PLAN = {"ffnn": 4000, "rnn": 2000, "lstm": 2000, "gpt": 8000}
# settings over the ladder's NEURAL_DEFAULTS for the demo's plan
# (LSTM at 4,000 steps, before its reset at <s>: 2e-2 diverged from run to run, 5e-3 gave test
# perplexity 86.4, 1e-2 76.9; dropout 0.3 or 0.5 were worse)
DEMO_SETTINGS: dict[str, dict[str, Any]] = {"lstm": {"learning_rate": 1e-2}}
DEMO_CHECKS = 10  # validation checks per neural rung; the best checkpoint is kept
# the safety cap: wall time for the neural rungs together -- for each lane of rungs trained at
# once, each rung's share of what is left in proportion to its planned steps within the lane
# (the rest of the demo -- tokenizers, n-grams -- takes ~20 s)
DEMO_CAP_SECONDS = 270.0
DEMO_MERGES = 10


def demo_corpus() -> Path:
    """The bundled Tiny Shakespeare (package data ``chainrule/resources/tinyshakespeare.txt``)."""
    ref = resources.files("chainrule") / "resources" / "tinyshakespeare.txt"
    path = Path(str(ref))
    if not path.is_file():
        raise DataError(
            "the bundled demo corpus (chainrule/resources/tinyshakespeare.txt) is missing; "
            "reinstall chainrule."
        )
    return path


def demo_config(
    output: str, *, rungs: tuple[str, ...] | None = None,
    budget: tuple[int, float] | None = None, pairs: tuple[str, ...] = (), seed: int = 1337,
    cap: float = DEMO_CAP_SECONDS, workers: int = 0,
) -> LadderConfig:
    """The demo's ladder settings.

    ``budget`` is ``None`` (the step plan :data:`DEMO_PLAN`), ``(steps, 0)`` (that many steps
    for every neural rung, same checks and cap) or ``(max_steps, seconds)`` (a wall-time budget
    per neural rung, as before the step plan: the figures then depend on the machine's speed).
    ``workers``: processes training the neural rungs at once (0: one per usable CPU; the
    figures are the same either way, :mod:`chainrule.evaluation.ladder_lanes`).
    """
    common: dict[str, Any] = {
        "data": (str(demo_corpus()),), "output": output, "rungs": rungs or DEFAULT_RUNGS,
        "tokenizer_kind": "word", "min_count": 3, "pairs": pairs, "sample_tokens": 25,
        "seed": seed}
    if budget is not None and budget[1] > 0:
        return LadderConfig(**common, neural_iters=budget[0], neural_seconds=budget[1],
                            neural_overrides={f: dict(s) for f, s in DEMO_SETTINGS.items()})
    plan = {f: (budget[0] if budget else steps) for f, steps in DEMO_PLAN.items()}
    overrides = {f: {**DEMO_SETTINGS.get(f, {}), "max_iters": n} for f, n in plan.items()}
    return LadderConfig(**common, neural_iters=max(plan.values()), neural_overrides=overrides,
                        neural_checks=DEMO_CHECKS, neural_cap_seconds=cap, neural_threads=1,
                        neural_cap_shared=True, neural_workers=workers)


def _merge_strings(tok, n: int) -> list[tuple[str, str]]:
    merges = getattr(tok, "merges", None)
    if callable(merges):
        merges = merges()
    out = []
    for m in list(merges or [])[:n]:
        a, b = m[0], m[1]
        out.append(tuple(tok.id_to_token(x) if isinstance(x, int) else str(x) for x in (a, b)))
    return out


def _pieces(tok, word: str) -> list[str]:
    return [tok.id_to_token(i) for i in tok.encode(word)]


def show_tokenizers(*, quiet: bool = False, bpe_vocab: int = 1000) -> dict[str, Any]:
    """Train char, word and BPE tokenizers on the demo corpus and print what they learned."""
    from chainrule.evaluation.ladder_rungs import train_tokenizer_for

    path = demo_corpus()
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    say = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    say(f"Tiny Shakespeare ({path}): {len(lines):,} non-empty lines, {len(text):,} characters, "
        f"{len(text.split()):,} words.")
    say("\nTokenizers trained on it:")
    info: dict[str, Any] = {}
    for kind, kwargs in (("char", {}), ("word", {"min_count": 2}),
                         ("bpe", {"vocab_size": bpe_vocab})):
        t0 = time.perf_counter()
        tok = train_tokenizer_for(kind, lines, **kwargs)
        dt = time.perf_counter() - t0
        splits = {w: _pieces(tok, w) for w in DEMO_WORDS}
        entry: dict[str, Any] = {"vocab_size": tok.vocab_size, "seconds": dt, "splits": splits}
        say(f"  {kind:<5} vocabulary {tok.vocab_size:>6,} tokens (trained in {dt:.1f} s)")
        if kind == "bpe":
            merges = _merge_strings(tok, DEMO_MERGES)
            entry["first_merges"] = merges
            if merges:
                say(f"        first {len(merges)} merges: "
                    + ", ".join(f"({a} {b})" for a, b in merges))
        if kind != "char":
            say("        how words split: " + "; ".join(
                f"{w} -> {' '.join(p)}" for w, p in splits.items()))
        info[kind] = entry
    return info


__all__ = ["DEMO_CAP_SECONDS", "DEMO_CHECKS", "DEMO_NEURAL_SECONDS", "DEMO_PLAN", "demo_config",
           "demo_corpus", "show_tokenizers"]

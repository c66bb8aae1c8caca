"""``chainrule demo``: tokenizers and a small model ladder on the bundled Tiny Shakespeare.

The budget: at most 5 minutes on 2 CPU cores (we aim for 2-3). The corpus is split by lines
(80/10/10, contiguous), the ladder is word level with words seen fewer than 3 times mapped to
``<unk>``, and each neural rung trains for 40 seconds of wall time (a probe measures the speed,
the step total and learning-rate schedule are planned to end with the budget) -- about two
passes over the training text, enough for the feed-forward model and the GPT to come close
to the n-grams, not to pass them; the report says so.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

from chainrule.errors import DataError
from chainrule.evaluation.ladder import DEFAULT_RUNGS, LadderConfig

DEMO_WORDS = ["Shakespeare", "wherefore", "unkindness", "gentlemen", "thou"]
DEMO_NEURAL_SECONDS = 40.0  # wall time per neural rung (see ladder_rungs.train_within)
DEMO_MAX_STEPS = 20_000  # only a fast machine reaches this within the budget
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
    budget: tuple[int, float] | None = None, pairs: tuple[str, ...] = (),
) -> LadderConfig:
    """The demo's ladder settings; ``budget`` is (steps, seconds) per neural rung."""
    steps, seconds = budget or (DEMO_MAX_STEPS, DEMO_NEURAL_SECONDS)
    return LadderConfig(
        data=(str(demo_corpus()),), output=output, rungs=rungs or DEFAULT_RUNGS,
        tokenizer_kind="word", min_count=3, neural_iters=steps, neural_seconds=seconds,
        pairs=pairs, sample_tokens=25,
    )


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


__all__ = ["DEMO_NEURAL_SECONDS", "demo_config", "demo_corpus", "show_tokenizers"]

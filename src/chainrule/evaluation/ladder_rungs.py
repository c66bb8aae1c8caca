"""How each rung of the ladder is trained: thin adapters over the families' public APIs.

Each trainer takes the shared :class:`~chainrule.evaluation.ladder_config.LadderData` and returns a
fitted model, the directory it already lives in (``None`` when the ladder should save it) and
what it cost (``steps``, ``tokens_seen``). A trainer that raises a ``ChainruleError`` is
reported by the ladder as a failed rung; the others still run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PROBE_STEPS = 30  # a time budget's first chunk: measures the speed (and is the least it buys)
TRY_STEPS = 8  # then this many steps with torch's thread count, to see whether it is faster
CHUNK_SECONDS = 5.0  # later chunks; a machine that slows mid-chunk overruns by this much at most
WARMUP_STEPS = 30  # linear warmup; short CPU runs cannot spare the usual 100+


# The ladder's neural settings, chosen for ~30 s of a 2-core CPU (the demo): ~256 tokens per
# step (many small steps beat few large ones in a short budget), peak learning rates well above
# the usual 1e-3 with a 30-step warmup and a cosine decay that ends with the budget. Measured on
# the demo's Tiny Shakespeare word ladder at 30 s (test perplexity): LSTM 115 at 3e-3 -> 79 at
# 2e-2; GPT 82 at 3e-3 -> 77 at 1e-2; FFNN best at 3e-3; dropout 0.1 beat 0 for the LSTM.
NEURAL_DEFAULTS: dict[str, dict[str, Any]] = {
    # direct / tie_weights / bias are spelled out: they were the training defaults before the
    # model config classes became the one set of defaults, and the ladder's figures use them
    "ffnn": {"order": 5, "n_embd": 64, "n_hidden": 128, "dropout": 0.1, "direct": False,
             "learning_rate": 3e-3, "block_size": 16, "batch_size": 16},
    # reset_at_bos: the ladder scores every sentence from the zero state after <s>, so the
    # recurrent rungs train that way too (the state carried across batches is zeroed at each
    # <s>); on the demo's plan it took the LSTM from 77.5 to 62.4 (bench/RESULTS.md)
    "rnn": {"n_layer": 1, "n_embd": 128, "n_hidden": 128, "dropout": 0.1, "tie_weights": True,
            "learning_rate": 1e-2, "block_size": 16, "batch_size": 16, "reset_at_bos": True},
    "lstm": {"n_layer": 1, "n_embd": 128, "n_hidden": 128, "dropout": 0.1,
             "learning_rate": 2e-2, "block_size": 16, "batch_size": 16, "reset_at_bos": True},
    # mask_at_bos: likewise each sentence of a GPT window is read from its own <s> at position 0
    # (training/data.py bos_segments); on the demo's plan it took the GPT from 66.5 to 64.3
    "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 64, "dropout": 0.1, "bias": False,
            "learning_rate": 1e-2, "block_size": 32, "batch_size": 8, "mask_at_bos": True},
}


def train_tokenizer_for(kind: str, lines: list[str], *, vocab_size: int = 0, min_count: int = 0,
                        lowercase: bool = False, word_mode: str = "regex"):
    """Train the ladder's one tokenizer of ``kind`` on ``lines``."""
    from chainrule.tokenizers import train_tokenizer

    kwargs: dict[str, Any] = {}
    if vocab_size:
        kwargs["vocab_size"] = vocab_size
    if min_count and kind == "word":
        kwargs["min_count"] = min_count
    if lowercase and kind == "word":
        kwargs["lowercase"] = True
    if kind == "word" and word_mode != "regex":
        kwargs["mode"] = word_mode
    return train_tokenizer(kind, ["\n".join(lines)], **kwargs)


# -- reference and n-gram rungs ---------------------------------------------------------------
def _uniform(data) -> tuple[Any, Path | None, dict]:
    from chainrule.models.reference import UniformModel

    tok = data.tokenizer
    return UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id), None, {}


def _ngram(order: int) -> Callable:
    def trainer(data) -> tuple[Any, Path | None, dict]:
        """Interpolated modified Kneser-Ney of ``order`` on the framed training ids."""
        from chainrule.models.ngram import NgramModel

        tok = data.tokenizer
        model = NgramModel(order, "mkn", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                           eos_id=tok.eos_id, unk_id=tok.unk_id, pad_id=tok.pad_id)
        model.fit(data.train_seqs)
        # an n-gram reads every training token (and </s>) once
        return model, None, {"tokens_seen": sum(len(s) - 1 for s in data.train_seqs)}

    return trainer


# -- neural rungs -----------------------------------------------------------------------------
def _neural(family: str) -> Callable:
    def trainer(data) -> tuple[Any, Path | None, dict]:
        from chainrule.models.base import load_model
        from chainrule.training.loop import train

        cfg = data.config
        train_ids = _stream(data.train_seqs)
        val_ids = _stream(data.valid_seqs) if data.valid_seqs else None
        directory = data.out_dir / "models" / family
        tc = _train_config(family, data, cfg.neural_iters)
        if val_ids is not None and len(val_ids) <= tc.block_size + 1:
            val_ids = None
        _fresh(directory)  # a fresh run each time (the ladder is not resumable)
        timed = cfg.neural_seconds > 0 and "max_iters" not in cfg.neural_overrides.get(family, {})
        if cfg.neural_threads:  # the ladder restores the thread count after each rung
            import torch

            torch.set_num_threads(cfg.neural_threads)
        if timed:
            # the thread count train_within picks stays for this rung's evaluation too
            steps = train_within(family, data, train_ids, val_ids, directory, cfg.neural_seconds)
        elif cfg.neural_checks:
            from chainrule.evaluation.ladder_plan import train_planned

            total, cap = tc.max_iters, _cap_share(family, data)
            plan = train_planned(
                family, data, train_ids, val_ids, directory,
                lambda step: _train_config(family, data, total, max_iters=step), total,
                checks=cfg.neural_checks, cap=cap)
            return load_model(directory), directory, {
                "steps": plan.steps, "tokens_seen": plan.steps * tc.tokens_per_step,
                "best_step": plan.best_step, "note": plan.note(cap), "curve": plan.curve}
        else:
            summary = train(tc, train_ids, val_ids, directory, tokenizer=data.tokenizer,
                            progress=False, plot=False)
            steps = int(summary.get("steps", 0))
        return load_model(directory), directory, {"steps": steps,
                                                  "tokens_seen": steps * tc.tokens_per_step}

    return trainer


def train_within(family: str, data, train_ids: np.ndarray, val_ids: np.ndarray | None,
                 directory: Path, seconds: float) -> int:
    """Train one neural rung within a wall-time budget; return the steps taken.

    A probe of ``PROBE_STEPS`` steps on one thread measures the speed; a few more steps with
    torch's thread count follow when the budget can afford them, and the faster setting is
    kept for the rest of the rung (on a CPU shared with other jobs, small models often run
    many times faster on one thread: the threads of each tiny kernel wait for each other).
    Then the run continues in chunks of about ``CHUNK_SECONDS`` (each resumes the checkpoint
    exactly). Before every chunk the step total is re-planned from the time left and the chunk
    before (its seconds per step, and its start-up, evaluation and checkpoint time), and the cosine
    schedule is set to end at that total, so the learning rate has decayed when the budget runs
    out. A machine that slows down mid-run overruns by the extra time of one chunk at most.
    """
    import torch

    from chainrule.training.loop import train

    t0 = time.perf_counter()
    cap = data.config.neural_iters
    done, total = 0, cap

    def run_to(step: int, threads: int) -> tuple[float, float]:
        """Train up to ``step``; return (seconds of this call beyond its optimiser steps --
        start-up, evaluation, checkpoint --, seconds per optimiser step)."""
        torch.set_num_threads(threads)
        tc = _train_config(family, data, total, max_iters=step)
        t = time.perf_counter()
        summary = train(tc, train_ids, val_ids, directory, tokenizer=data.tokenizer,
                        resume=done > 0, progress=False, plot=False)
        pure = summary["ms_per_iter"] / 1000
        return max(0.0, time.perf_counter() - t - (step - done) * pure), max(pure, 1e-6)

    # the probe runs with total = cap (warmup, then a schedule that has barely begun to decay)
    from chainrule import threads as thread_policy

    many = torch.get_num_threads()
    if thread_policy.chosen_by == "load":  # a guess from the load average: measure instead
        many = max(many, min(thread_policy.usable_cpus(), thread_policy.MAX_DEFAULT_THREADS))
    step = min(PROBE_STEPS, cap)
    overhead, per_step = run_to(step, 1)
    done, threads = step, 1
    left = seconds - (time.perf_counter() - t0)
    if many > 1 and done + TRY_STEPS <= cap and 4 * TRY_STEPS * per_step < 0.2 * left:
        # a resumed call's start-up is what later chunks pay; the probe's included one-off costs
        overhead, pure = run_to(done + TRY_STEPS, many)
        done += TRY_STEPS
        if pure < 0.9 * per_step:
            threads, per_step = many, pure
    while done < cap:
        left = seconds - (time.perf_counter() - t0)
        calls = max(1, math.ceil(left / CHUNK_SECONDS))
        total = min(cap, done + int((left - calls * overhead) / per_step))
        if total <= done:
            break
        chunk = max(1, int((CHUNK_SECONDS - overhead) / per_step))
        step = total if total - done < 1.5 * chunk else done + chunk
        overhead, per_step = run_to(step, threads)
        done = step
    return done


def _cap_share(family: str, data, now: float | None = None) -> float:
    """This rung's wall-time cap: the configured one, or with ``neural_cap_shared`` its share
    of what is left of it, in proportion to its planned steps among this and the later neural
    rungs of the ladder (of a lane: :mod:`chainrule.evaluation.ladder_lanes`). What is left is
    the cap less the time since ``data.neural_started`` (the first neural rung's start), so
    time an earlier rung did not use goes to the later ones."""
    cfg = data.config
    if not cfg.neural_cap_shared or not cfg.neural_cap_seconds:
        return cfg.neural_cap_seconds
    steps = {r: _train_config(r, data, cfg.neural_iters).max_iters
             for r in cfg.rungs if r in NEURAL_DEFAULTS}
    later = list(steps)[list(steps).index(family):]
    spent = 0.0
    if data.neural_started is not None:
        spent = (time.perf_counter() if now is None else now) - data.neural_started
    left = max(cfg.neural_cap_seconds - spent, 1e-6)  # 0 would mean "no cap"
    return left * steps[family] / sum(steps[r] for r in later)


def _fresh(directory: Path) -> None:
    import shutil

    if directory.exists():
        shutil.rmtree(directory)


def _train_config(family: str, data, iters: int, **extra: Any):
    """The training configuration of a neural rung: the ladder's defaults, then the user's."""
    from chainrule.training.config import make_config

    cfg = data.config
    settings = dict(NEURAL_DEFAULTS[family])
    settings.update(cfg.neural_overrides.get(family, {}))
    iters = int(settings.pop("max_iters", iters))
    base = {
        "family": family, "max_iters": iters, "lr_decay_iters": iters,
        "warmup_iters": min(WARMUP_STEPS, max(1, iters // 10)), "eval_interval": iters,
        "eval_iters": 4, "log_interval": max(1, iters), "boundaries": "lines",
        "tokenizer_kind": cfg.tokenizer_kind, "seed": cfg.seed, "device": "cpu",
    }
    base.update(settings)
    base.update(extra)
    return make_config(family, overrides=base)


def _pretrained(data):
    """A model trained elsewhere, scored with its own tokenizer: nothing is trained here."""
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(data.config.pretrained)
    return model, Path(data.config.pretrained), {"tokenizer": tok, "pretrained": True}


def _stream(seqs: list[list[int]]) -> np.ndarray:
    """``<s> a b </s> <s> c </s> ...``: the training engine's ``boundaries="lines"`` layout."""
    return np.fromiter((t for s in seqs for t in s), dtype=np.int32)


TRAINERS: dict[str, Callable] = {
    "uniform": _uniform,
    "unigram": _ngram(1),
    "bigram": _ngram(2),
    "trigram": _ngram(3),
    "kn5": _ngram(5),
    "ffnn": _neural("ffnn"),
    "rnn": _neural("rnn"),
    "lstm": _neural("lstm"),
    "gpt": _neural("gpt"),
    "pretrained": _pretrained,
}

__all__ = ["NEURAL_DEFAULTS", "TRAINERS", "train_tokenizer_for", "train_within"]

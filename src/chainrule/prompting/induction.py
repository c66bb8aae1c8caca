"""In-context learning we can watch emerge: induction heads (Olsson et al. 2022).

Training data: sequences of uniformly random tokens in which one random segment appears twice::

    r r r [s1 s2 ... sL] r r r r [s1 s2 ... sL] r r
                                   ^^^^^^^^^^ "repeated" targets: s2..sL are predictable
                                              by copying from the first occurrence

Nothing but copying can be learnt (every other token is uniform noise, loss ln V), so the loss
on the repeated tokens measures in-context learning directly. A 2-layer attention-only
transformer (``gpt`` with ``mlp="none"``) learns it through an induction circuit: a
previous-token head in layer 0 and, in layer 1, a head that attends from a token to the token
*after* its previous occurrence ("prefix matching") and copies it. Its repeated-token loss falls
suddenly (a phase change); an LSTM of similar size must hold the whole segment in its state and
does much less well.

Both models train with the one training loop (:func:`chainrule.training.train`), on batches
that are a pure function of (seed, step); each evaluation measures the two losses on a fixed
held-out batch (``on_evaluate``), and they are read back from ``metrics.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError
from chainrule.training.objectives import TrainBatch


@dataclass(frozen=True)
class InductionConfig:
    """The study's settings (defaults: both models in a few minutes on two CPU cores)."""

    vocab: int = 64  # random token ids 2..vocab+1 (0, 1: BOS/EOS, unused)
    seq_len: int = 48  # tokens per training sequence
    segment: tuple[int, int] = (8, 23)  # length range of the repeated segment
    n_embd: int = 64  # transformer width (the LSTM's hidden size is chosen to match parameters)
    n_head: int = 4
    batch_size: int = 32
    steps: int = 1500
    learning_rate: float = 3e-3
    eval_interval: int = 25
    seed: int = 0

    def __post_init__(self):
        lo, hi = self.segment
        if not (2 <= lo <= hi and 2 * hi + 2 <= self.seq_len):
            raise ConfigError(f"segment lengths {self.segment} must be 2 <= lo <= hi with two "
                              f"copies fitting in seq_len {self.seq_len}.")
        if self.steps < 1:
            raise ConfigError(f"steps must be positive, got {self.steps}.")


def repeated_batch(cfg: InductionConfig, rng: np.random.Generator, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences (n, seq_len + 1) and a mask (n, seq_len) of the repeated targets.

    ``mask[b, t]`` is True when target ``x[b, t + 1]`` is the 2nd..L-th token of the second copy.
    """
    T = cfg.seq_len + 1
    x = rng.integers(2, cfg.vocab + 2, size=(n, T))
    mask = np.zeros((n, T - 1), dtype=bool)
    for b in range(n):
        L = int(rng.integers(cfg.segment[0], cfg.segment[1] + 1))
        s1 = int(rng.integers(0, T - 2 * L))
        s2 = int(rng.integers(s1 + L, T - L + 1))
        x[b, s2 : s2 + L] = x[b, s1 : s1 + L]
        mask[b, s2 : s2 + L - 1] = True  # targets x[s2+1 .. s2+L-1]
    return x, mask


class RepeatedSegments:
    """A dataset for :func:`chainrule.training.train`: batches cut from (seed, step)."""

    def __init__(self, cfg: InductionConfig, salt: int = 0):
        self.cfg, self.salt = cfg, salt

    def __len__(self) -> int:
        return 1

    def train_sampler(self, tcfg: Any, device: torch.device, micro_batches: int = 1):
        return _Sampler(self.cfg, device, self.salt, micro_batches)

    def eval_sampler(self, tcfg: Any, device: torch.device, what: str = ""):
        return _Sampler(self.cfg, device, self.salt + 1, 1, fixed=True)


class _Sampler:
    def __init__(self, cfg: InductionConfig, device, salt: int, micros: int, fixed=False):
        self.cfg, self.device, self.salt, self.micros, self.fixed = cfg, device, salt, micros, fixed

    def batch(self, step: int, micro: int) -> TrainBatch:
        key = [self.cfg.seed, self.salt, micro] if self.fixed else \
            [self.cfg.seed, self.salt, step * self.micros + micro]
        x, _ = repeated_batch(self.cfg, np.random.Generator(np.random.PCG64(key)),
                              self.cfg.batch_size)
        t = torch.as_tensor(x, dtype=torch.long, device=self.device)
        return TrainBatch(t[:, :-1], t[:, 1:], reset=True)


@torch.no_grad()
def split_losses(model, x: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean loss (nats) on repeated targets and on the other (first-occurrence) targets."""
    was = model.training
    model.eval()
    t = torch.as_tensor(x, dtype=torch.long, device=model.device)
    state = model.init_state(t.shape[0], model.device) if hasattr(model, "init_state") else None
    logits, _ = model(t[:, :-1], state)
    nll = F.cross_entropy(logits.float().transpose(1, 2), t[:, 1:], reduction="none").cpu()
    m = torch.as_tensor(mask)
    model.train(was)
    return {"repeated": float(nll[m].mean()), "fresh": float(nll[~m].mean())}


def prefix_matching(maps: torch.Tensor, period: int) -> torch.Tensor:
    """Prefix-matching score of every head on a sequence made of one random block repeated.

    For a query at position i in a later copy, the token after the previous occurrence of the
    current token sits at ``i - period + 1``; the score is the mean attention weight there.

    Args:
        maps: (n_layer, n_head, T, T) attention weights.
        period: length of the repeated block.
    Returns:
        (n_layer, n_head) scores in [0, 1].
    """
    T = maps.shape[-1]
    q = torch.arange(period, T)
    return maps[:, :, q, q - period + 1].mean(dim=-1)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lstm_width(cfg: InductionConfig, target: int) -> int:
    """A one-layer LSTM hidden size whose model has about ``target`` parameters (the count
    grows with the width, so a bisection finds it)."""
    from chainrule.models.neural import build_neural_model

    def count(h: int) -> int:
        return param_count(build_neural_model("lstm", vocab_size=cfg.vocab + 2, n_embd=h,
                                              n_hidden=h, n_layer=1, dropout=0.0))

    lo, hi = 4, 1024
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return lo if abs(count(lo) - target) <= abs(count(hi) - target) else hi


def _train_config(cfg: InductionConfig, family: str, model: dict[str, Any]):
    from chainrule.training.config import TrainConfig

    return TrainConfig(family=family, model=model, block_size=cfg.seq_len,
                       batch_size=cfg.batch_size, max_iters=cfg.steps,
                       learning_rate=cfg.learning_rate, min_lr=cfg.learning_rate / 10,
                       warmup_iters=min(100, cfg.steps // 10), lr_decay_iters=cfg.steps,
                       weight_decay=0.0, eval_interval=cfg.eval_interval, eval_iters=1,
                       log_interval=cfg.eval_interval, seed=cfg.seed, device="cpu",
                       dtype="float32")


def model_settings(cfg: InductionConfig, kind: str) -> tuple[str, dict[str, Any]]:
    """(family, model keys) of ``"transformer"`` or ``"lstm"``."""
    if kind == "transformer":
        return "gpt", {"n_layer": 2, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                       "mlp": "none", "dropout": 0.0,
                       # rotary: the previous-token head is a fixed relative offset
                       "positions": "rotary"}
    if kind == "lstm":
        from chainrule.models.neural import build_neural_model

        gpt = build_neural_model("gpt", vocab_size=cfg.vocab + 2, block_size=cfg.seq_len,
                                 **model_settings(cfg, "transformer")[1])
        h = lstm_width(cfg, param_count(gpt))
        return "lstm", {"n_layer": 1, "n_embd": h, "n_hidden": h, "dropout": 0.0}
    raise ConfigError(f"unknown model {kind!r}; choose transformer or lstm.")


def train_one(cfg: InductionConfig, kind: str, out_dir: Path,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train one model on repeated segments; return its loss curves and the model."""
    from chainrule.training import train

    family, settings = model_settings(cfg, kind)
    held_x, held_mask = repeated_batch(
        cfg, np.random.Generator(np.random.PCG64([cfg.seed, 99])), 256)
    curve: dict[str, list[float]] = {"step": [], "repeated": [], "fresh": []}
    holder: dict[str, Any] = {}

    def on_evaluate(model, step):
        losses = split_losses(model, held_x, held_mask)
        curve["step"].append(step)
        curve["repeated"].append(losses["repeated"])
        curve["fresh"].append(losses["fresh"])
        holder["model"] = model
        if log is not None:
            log(f"{kind} step {step}: repeated {losses['repeated']:.3f}, "
                f"first occurrence {losses['fresh']:.3f}")
        return {f"loss_{k}": v for k, v in losses.items()}

    t0, c0 = time.perf_counter(), time.process_time()
    train(_train_config(cfg, family, settings), RepeatedSegments(cfg), None, out_dir,
          vocab_size=cfg.vocab + 2, progress=False, plot=False, on_evaluate=on_evaluate)
    model = holder["model"]
    return {"curve": curve, "model": model, "parameters": param_count(model),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "family": family, "settings": settings}


def best_head(model, cfg: InductionConfig, period: int = 16) -> dict[str, Any]:
    """The head with the highest prefix-matching score on a repeated random block."""
    from chainrule.models.attention_maps import attention_maps

    rng = np.random.Generator(np.random.PCG64([cfg.seed, 7]))
    reps = max(2, cfg.seq_len // period)
    block = rng.integers(2, cfg.vocab + 2, size=period)
    tokens = torch.as_tensor(np.tile(block, reps)[: cfg.seq_len])
    maps = attention_maps(model, tokens)
    scores = prefix_matching(maps, period)
    layer, head = divmod(int(scores.argmax()), scores.shape[1])
    q = torch.arange(1, maps.shape[-1])
    previous = maps[:, :, q, q - 1].mean(dim=-1)  # the other half: previous-token heads
    return {"layer": layer, "head": head, "score": float(scores[layer, head]),
            "scores": scores.tolist(), "previous_token_scores": previous.tolist(),
            "attention": maps[layer, head].numpy(),
            "label": f"layer {layer} head {head}, prefix-matching score "
                     f"{float(scores[layer, head]):.2f}"}


def run_induction_study(out: Path, cfg: InductionConfig | None = None,
                        kinds: Sequence[str] = ("transformer", "lstm"),
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train each model, write ``induction.png`` and ``induction.json`` into ``out``."""
    from chainrule.evaluation.plots import have_matplotlib
    from chainrule.fileio import write_json

    cfg = cfg or InductionConfig()
    for k in kinds:
        if k not in ("transformer", "lstm"):
            raise ConfigError(f"unknown model {k!r}; choose transformer or lstm.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"uniform_loss": float(np.log(cfg.vocab)), "models": {},
                              "config": {**cfg.__dict__, "segment": list(cfg.segment)}}
    runs = {}
    for k in kinds:
        runs[k] = train_one(cfg, k, out / k, log)
        c = runs[k]["curve"]
        result["models"][k] = {
            "family": runs[k]["family"], "settings": runs[k]["settings"],
            "parameters": runs[k]["parameters"], "seconds": runs[k]["seconds"],
            "cpu_seconds": runs[k]["cpu_seconds"],
            "repeated_first": c["repeated"][0], "repeated_last": c["repeated"][-1],
            "fresh_last": c["fresh"][-1], "curve": c,
            "phase_change_step": phase_change_step(c),
            "few_shot": few_shot_pairs(runs[k]["model"], cfg, _fitting_shots(cfg),
                                       n_pairs=min(16, cfg.vocab // 2)),
        }
    files = {"json": str(out / "induction.json")}
    head = None
    if "transformer" in runs:
        head = best_head(runs["transformer"]["model"], cfg)
        result["head"] = {k: v for k, v in head.items() if k != "attention"}
    if have_matplotlib():
        from chainrule.prompting.plots import plot_induction

        attention = head["attention"] if head is not None else np.zeros((1, 1))
        files["plot"] = str(plot_induction({k: r["curve"] for k, r in runs.items()}, attention,
                                           head["label"] if head else "no transformer trained",
                                           out / "induction.png"))
    result["files"] = files
    write_json(out / "induction.json", result)
    return result


def _fitting_shots(cfg: InductionConfig) -> list[int]:
    """0, 1, 2, 4, ... demonstrations, as many as fit the relation and the sequence length."""
    top = min(16, cfg.vocab // 2, (cfg.seq_len - 1) // 2)
    return [0] + [2 ** i for i in range(5) if 2 ** i <= top]


@torch.no_grad()
def few_shot_pairs(model, cfg: InductionConfig, shots: Sequence[int] = (0, 1, 2, 4, 8, 16),
                   n: int = 256, n_pairs: int = 16) -> dict[str, dict[int, float]]:
    """Few-shot accuracy on a relation of held-out pairs.

    A relation of ``n_pairs`` pairs (x -> y, 2 * n_pairs distinct random tokens, drawn with a
    seed that training never uses) is demonstrated ``k`` pairs at a time, without replacement, as ``x1 y1 x2 y2
    ... xk yk xq``; the model's most likely next token must be ``yq`` for a query ``xq`` drawn
    from the whole relation. Only copying from the context can answer (nothing about the
    relation is in the weights), so a perfect copier scores ``k / n_pairs``: accuracy rises
    with the number of demonstrations as the query's pair becomes likelier to be among them.

    Returns:
        ``{"acc": {k: ...}, "acc_in_context": {k: ...}, "in_context": {k: ...}}``: accuracy
        over all queries, accuracy over the queries whose pair was demonstrated (the copy
        accuracy; NaN when none was), and the fraction of those queries.
    """
    if max(shots) > n_pairs or 2 * max(shots) + 1 > cfg.seq_len or 2 * n_pairs > cfg.vocab:
        raise ConfigError(f"at most {min(n_pairs, (cfg.seq_len - 1) // 2)} demonstrations fit "
                          f"(a relation of {n_pairs} pairs, sequences of {cfg.seq_len} tokens).")
    rng = np.random.Generator(np.random.PCG64([cfg.seed, 4242]))
    # sources and targets all distinct: a query's token occurs only where its pair is shown
    src, tgt = rng.choice(np.arange(2, cfg.vocab + 2), size=(2, n_pairs), replace=False)
    out: dict[str, dict[int, float]] = {"acc": {}, "acc_in_context": {}, "in_context": {}}
    for k in shots:
        rows, gold, seen = [], [], []
        for _ in range(n):
            demos = rng.permutation(n_pairs)[:k]
            q = int(rng.integers(n_pairs))
            rows.append([t for i in demos for t in (src[i], tgt[i])] + [src[q]])
            gold.append(tgt[q])
            seen.append(q in set(demos.tolist()))
        tokens = torch.as_tensor(np.array(rows), dtype=torch.long)
        lp = model.logprobs(tokens)[:, -1].float().cpu()
        lp[:, :2] = -torch.inf  # BOS / EOS are never answers
        hit = (lp.argmax(-1).numpy() == np.array(gold))
        seen_a = np.array(seen)
        out["acc"][k] = float(hit.mean())
        out["in_context"][k] = float(seen_a.mean())
        out["acc_in_context"][k] = float(hit[seen_a].mean()) if seen_a.any() else float("nan")
    return out


def phase_change_step(curve: dict[str, list[float]]) -> int | None:
    """The evaluation step at which the repeated-token loss fell fastest (None: too few)."""
    r = curve["repeated"]
    if len(r) < 2:
        return None
    drops = np.diff(np.asarray(r))
    return int(curve["step"][int(np.argmin(drops)) + 1])


__all__ = ["InductionConfig", "RepeatedSegments", "best_head", "few_shot_pairs", "param_count",
           "phase_change_step", "prefix_matching", "repeated_batch", "run_induction_study",
           "split_losses", "train_one"]

"""The one training loop for every neural family, whatever the objective.

A model only has to follow the neural contract: ``forward(idx[B, T], state) -> (logits[B, T, V],
new_state)``, ``init_state(batch_size, device)``, ``detach_state(state)``,
``optim_groups(weight_decay)``, ``save(dir)`` and a ``recurrent`` flag (state carried across
batches). The loss is an :class:`~chainrule.training.objectives.Objective`'s: the loop never
switches on family names. The loop adds AdamW (fused where available)
with decay / no-decay groups, linear warmup then cosine decay, gradient clipping and
accumulation, bf16 autocast on CUDA, optional ``torch.compile``, DDP under torchrun,
evaluation with early stopping, checkpoints that resume exactly, ``metrics.jsonl`` and a plot.

The hot loop does no Python work per token and no host synchronisation per step: the losses of
the steps between two log lines stay on the device and are read in one transfer, which is also
where a NaN loss is caught (and the exact step named).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.errors import ConfigError
from chainrule.threads import ThreadMonitor
from chainrule.training import checkpoint as ckpt_io
from chainrule.training.build import (
    default_model_factory,
    model_kwargs,
    resolve_device,
    seed_everything,
    uses_bf16,
)
from chainrule.training.config import TrainConfig
from chainrule.training.data import EvalSampler, StreamSampler, WindowSampler
from chainrule.training.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    init_distributed,
    shutdown,
)
from chainrule.training.metrics import MetricsLog, plot_losses
from chainrule.training.objectives import Objective, default_objective
from chainrule.training.optim import get_lr, make_optimizer
from chainrule.training.result import TrainResult
from chainrule.training.run_evaluation import _EvaluateAndCheckpoint, _train_batch
from chainrule.training.strategy import make_strategy

ModelFactory = Callable[[TrainConfig, int, int | None, int | None], torch.nn.Module]


class _Run(_EvaluateAndCheckpoint):
    """State of one run; :func:`train` is the public entry point."""

    def __init__(self, cfg: TrainConfig, train_ids: np.ndarray, val_ids: np.ndarray | None,
                 out_dir: Path, tokenizer, vocab_size: int, factory: ModelFactory,
                 resume: bool, progress: bool, dist: DistInfo, device: torch.device,
                 objective: Objective | None = None, on_evaluate: Callable | None = None):
        self.cfg, self.out_dir, self.tokenizer = cfg, out_dir, tokenizer
        self.on_evaluate = on_evaluate
        self.dist, self.device = dist, device
        self.strategy = make_strategy(cfg.strategy, dist, device)  # ddp or fsdp (torchrun)
        self.progress = progress and dist.is_main and sys.stderr.isatty()  # the bar
        self.log_lines = progress and dist.is_main and not self.progress  # no terminal: log
        gas = cfg.gradient_accumulation_steps
        if gas % dist.world_size:
            raise ConfigError(f"gradient_accumulation_steps ({gas}) must be a multiple of the "
                              f"number of processes ({dist.world_size}).")
        # micro-batches of each step are dealt out round-robin: rank r takes r, r+W, ...
        self.micros = list(range(dist.rank, gas, dist.world_size))

        seed_everything(cfg.seed)
        bos = getattr(tokenizer, "bos_id", None)
        eos = getattr(tokenizer, "eos_id", None)
        self.raw = self.strategy.place(factory(cfg, vocab_size, bos, eos))
        if tokenizer is not None and hasattr(self.raw, "attach_tokenizer"):
            self.raw.attach_tokenizer(tokenizer)  # e.g. spellings for char-composed embeddings
        self.objective = objective or default_objective(self.raw)
        self.objective.check(self.raw)
        # a model that carries state across batches (truncated BPTT) reads contiguous streams
        self.recurrent = bool(getattr(self.raw, "recurrent", False))
        if hasattr(train_ids, "train_sampler"):  # a dataset that cuts its own batches (SFT)
            self.sampler = train_ids.train_sampler(cfg, device, micro_batches=gas)
            self.eval_train = train_ids.eval_sampler(cfg, device, "training data")
            self.eval_val = (val_ids.eval_sampler(cfg, device, "validation data")
                             if val_ids is not None and len(val_ids) else None)
        else:
            self._token_samplers(cfg, train_ids, val_ids, gas, device)
        self.optimizer = make_optimizer(self.raw, cfg, device)
        self.use_bf16 = uses_bf16(cfg.dtype, device)
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if self.use_bf16
                         else contextlib.nullcontext())
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        self.step, self.best_val, self.best_step, self.bad_evals = 0, math.inf, -1, 0
        self.carried: dict[int, Any] = {}
        self.metrics = MetricsLog(out_dir / "metrics.jsonl", enabled=dist.is_main)
        if resume:
            self._resume()
        elif dist.is_main and (out_dir / "metrics.jsonl").exists():
            (out_dir / "metrics.jsonl").unlink()
        self.raw, self.optimizer = self.strategy.shard(  # FSDP: cut over the processes
            self.raw, self.optimizer, lambda m: make_optimizer(m, cfg, device))
        self.model: torch.nn.Module = self.raw
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.eval_model = self.model  # evaluation bypasses DDP's gradient hooks
        self.model = self.strategy.wrap(self.model)

    def _token_samplers(self, cfg: TrainConfig, train_ids: np.ndarray,
                        val_ids: np.ndarray | None, gas: int, device: torch.device) -> None:
        bos = self._bos_mask_id(cfg)
        if self.recurrent:
            self.sampler = StreamSampler(train_ids, cfg.batch_size, cfg.block_size,
                                         micro_batches=gas, device=device)
        else:
            self.sampler = WindowSampler(train_ids, cfg.batch_size, cfg.block_size, cfg.seed,
                                         device, bos)
        self.eval_train = EvalSampler(train_ids, cfg.batch_size, cfg.block_size, cfg.seed,
                                      device, "training corpus", bos)
        self.eval_val = (EvalSampler(val_ids, cfg.batch_size, cfg.block_size, cfg.seed,
                                     device, "validation corpus", bos)
                         if val_ids is not None and len(val_ids) else None)

    def _bos_mask_id(self, cfg: TrainConfig) -> int | None:
        """``<s>``'s id when windows are read as sentences (``mask_at_bos``), else None."""
        if not cfg.mask_at_bos:
            return None
        takes_mask = "attn_mask" in inspect.signature(self.raw.forward).parameters
        if self.recurrent or not takes_mask or self.raw.bos_id is None:
            raise ConfigError(f"mask_at_bos reads training windows as sentences through an "
                              f"attention mask, which a {cfg.family} model does not take; use "
                              "it with gpt (rnn and lstm have reset_at_bos) or drop it.")
        return int(self.raw.bos_id)

    # -- one optimiser step ----------------------------------------------------------------
    def _train_step(self) -> torch.Tensor:
        n_local = len(self.micros)
        total = torch.zeros((), device=self.device)
        for i, micro in enumerate(self.micros):
            b = self.sampler.batch(self.step, micro)
            state = None
            if self.recurrent:
                state = self.carried.get(micro)
                if b.reset or state is None:
                    state = self.raw.init_state(b.x.shape[0], self.device)
            sync = i == n_local - 1 or not self.dist.enabled
            ctx = contextlib.nullcontext() if sync else self.strategy.no_sync(self.model)
            with ctx:
                with self.autocast:
                    out = self.objective.compute(self.model, _train_batch(b, state))
                    loss = out.loss
                (loss / n_local).backward()
            if self.recurrent:
                self.carried[micro] = self.raw.detach_state(out.state)
            total += loss.detach()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / n_local

    def _tokens_seen(self) -> float | None:
        """Training tokens handed out so far over all processes, when the sampler counts them
        (``tokens_seen``: datasets whose batches vary, e.g. translation's target tokens); else
        None, and throughput is steps x ``tokens_per_step``."""
        seen = getattr(self.sampler, "tokens_seen", None)
        if seen is None:
            return None
        return all_reduce_sum(torch.tensor(float(seen), device=self.device), self.dist).item()

    def _interval_tokens(self, steps: int, since: float | None) -> tuple[float, float | None]:
        """(tokens trained on in the last ``steps`` steps, the count to measure the next from)."""
        seen = self._tokens_seen()
        if seen is None or since is None:
            return steps * self.cfg.tokens_per_step, seen
        return seen - since, seen

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        cfg = self.cfg
        start = self.step
        self.last_saved = start if start else None
        bar = tqdm(total=cfg.max_iters, initial=start, disable=not self.progress,
                   unit="it", dynamic_ncols=True, file=sys.stderr)
        pending: list[tuple[int, torch.Tensor]] = []
        interval_t0, interval_steps = time.perf_counter(), 0
        tok0 = self._tokens_seen()
        train_time, train_steps, train_tokens = 0.0, 0, 0.0
        last_loss = math.nan
        final_val = math.nan
        stopped_early = False
        self.model.train()
        # a guessed CPU thread count follows the machine's other work (chainrule.threads)
        monitor = ThreadMonitor() if self.device.type == "cpu" else None
        try:
            while True:
                at_eval = self.step % cfg.eval_interval == 0 or self.step >= cfg.max_iters
                if at_eval and not (self.step == start and getattr(self, "resumed_at", -1) ==
                                    start and self.step < cfg.max_iters):
                    values = self._check_finite(pending)
                    if values:
                        last_loss = values[-1]
                    pending = []
                    train_time += time.perf_counter() - interval_t0
                    train_steps += interval_steps
                    n_tok, tok0 = self._interval_tokens(interval_steps, tok0)
                    train_tokens += n_tok
                    va, stop = self._evaluate(start, bar)
                    if va is not None:
                        final_val = va
                    if stop:
                        stopped_early = True
                        break
                    interval_t0, interval_steps = time.perf_counter(), 0
                if self.step >= cfg.max_iters:
                    break
                lr = get_lr(self.step, cfg)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                pending.append((self.step, self._train_step()))
                self.step += 1
                interval_steps += 1
                bar.update(1)
                if self.step % cfg.log_interval == 0:
                    values = self._check_finite(pending)
                    pending = []
                    last_loss = values[-1]
                    dt = time.perf_counter() - interval_t0
                    train_time += dt
                    train_steps += interval_steps
                    n_tok, tok0 = self._interval_tokens(interval_steps, tok0)
                    train_tokens += n_tok
                    tok_s = n_tok / max(dt, 1e-9)
                    self.metrics.write({
                        "step": self.step, "train_loss": sum(values) / len(values), "lr": lr,
                        "tokens_per_s": tok_s, "ms_per_iter": 1000 * dt / interval_steps,
                        "threads": torch.get_num_threads()})
                    bar.set_postfix(loss=f"{values[-1]:.4f}", tok_s=f"{tok_s:,.0f}")
                    if monitor is not None:
                        monitor.revise()
                    interval_t0, interval_steps = time.perf_counter(), 0
        finally:
            bar.close()
        steps_timed = max(train_steps, 1)
        return {
            "family": cfg.family,
            "output": str(self.out_dir),
            "steps": self.step,
            "parameters": sum(p.numel() for p in self.raw.parameters()),
            "last_loss": last_loss,
            "final_val_loss": None if math.isnan(final_val) else final_val,
            "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
            "best_step": self.best_step,
            "stopped_early": stopped_early,
            "train_seconds": train_time,
            "ms_per_iter": 1000 * train_time / steps_timed,
            "tokens_per_s": (train_tokens if train_steps and tok0 is not None else
                             steps_timed * cfg.tokens_per_step) / max(train_time, 1e-9),
            "device": str(self.device),
            "world_size": self.dist.world_size,
        }


def _as_data(data: Any) -> Any:
    """Token ids as an array; a dataset that cuts its own batches as it is."""
    return data if hasattr(data, "train_sampler") else np.asarray(data)


def train(
    config: TrainConfig,
    train_ids: np.ndarray,
    val_ids: np.ndarray | None,
    out_dir: str | Path,
    *,
    tokenizer=None,
    vocab_size: int | None = None,
    resume: bool = False,
    model_factory: ModelFactory | None = None,
    objective: Objective | None = None,
    progress: bool = True,
    plot: bool = True,
    on_evaluate: Callable[[torch.nn.Module, int], dict[str, Any] | None] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a neural language model and write its directory; return the model and a summary.

    Args:
        config: the run's configuration (see :class:`TrainConfig`).
        train_ids: training token ids, int array (N,).
        val_ids: validation token ids (M,), or None to evaluate on the training data only.
        out_dir: the model directory (see :mod:`chainrule.training.checkpoint` for its layout).
        tokenizer: saved beside the model as ``tokenizer.json``; its ``vocab_size``,
            ``bos_id`` and ``eos_id`` configure the model.
        vocab_size: overrides the tokenizer's vocabulary size (needed when there is none).
        resume: continue from ``out_dir/last`` exactly where it stopped.
        model_factory: ``(config, vocab_size, bos_id, eos_id) -> nn.Module``; the default builds
            ``config.family`` with :func:`chainrule.models.neural.build_neural_model`.
        objective: what to minimise (default: next-token cross-entropy,
            :class:`chainrule.training.objectives.NextTokenCE`).
        progress: show a progress bar (only when stderr is a terminal, and on rank 0).
        plot: draw ``loss.png`` at the end (skipped with a note without matplotlib).
        on_evaluate: called as ``on_evaluate(model, step)`` at each evaluation (rank 0); a
            dict it returns is added to that ``metrics.jsonl`` record (e.g. sample answers).
        overwrite: start over in an ``out_dir`` that already holds a run (its checkpoints,
            metrics and model files are removed first; the token cache is kept).

    ``train_ids`` / ``val_ids`` may also be datasets that cut their own batches: objects with
    ``train_sampler(config, device, micro_batches)`` and ``eval_sampler(config, device, what)``
    whose samplers' ``batch(step, micro)`` return ``TrainBatch`` es
    (:class:`chainrule.training.sft.SFTData`).

    Returns:
        A :class:`TrainResult`: the JSON-serialisable summary dict (``steps``, ``last_loss``
        (the final step's training loss), ``final_val_loss``, ``best_val_loss``, ``best_step``,
        ``tokens_per_s``, ``ms_per_iter``...) whose ``.model`` is the trained model as saved in
        ``out_dir`` (the best evaluation's weights, as ``chainrule.load_model(out_dir)`` reads).
    """
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        if vocab_size is None:
            if tokenizer is None:
                raise ConfigError("train() needs a tokenizer or a vocab_size.")
            vocab_size = tokenizer.vocab_size
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            if overwrite and not resume:
                ckpt_io.remove_run(out_dir)
            if not resume and ckpt_io.find_checkpoint(out_dir) is not None:
                raise ConfigError(f"{str(out_dir)!r} already holds a training run; continue it "
                                  "(--resume, resume=True), start over (--overwrite, "
                                  "overwrite=True), or choose another output directory.")
        barrier(dist)
        run = _Run(config, _as_data(train_ids), None if val_ids is None else _as_data(val_ids),
                   out_dir, tokenizer, vocab_size, model_factory or default_model_factory,
                   resume, progress, dist, device, objective, on_evaluate)
        summary = run.run()
        if dist.is_main:
            from chainrule.fileio import write_json

            write_json(out_dir / "train_state.json", {"summary": summary,
                                                      "config": config.to_dict()})
            if plot:
                plot_losses(out_dir / "metrics.jsonl", out_dir / "loss.png")
        return TrainResult(summary, out_dir, run.strategy.plain(run.raw) if dist.is_main
                           else None, device)
    finally:
        shutdown(dist)


__all__ = [
    "TrainResult",
    "default_model_factory",
    "get_lr",
    "make_optimizer",
    "model_kwargs",
    "resolve_device",
    "train",
]

"""What a training run does at an evaluation: estimate the losses, refuse a NaN, log, keep the
best; and its checkpoints (save, resume exactly). The mixin of :mod:`chainrule.training.loop`'s
run, which holds the state these methods read (``cfg``, ``raw``, ``optimizer``, ``dist`` ...).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from chainrule.errors import ConfigError, TrainingError
from chainrule.training import checkpoint as ckpt_io
from chainrule.training.data import EvalSampler
from chainrule.training.distributed import all_reduce_mean, all_reduce_sum, barrier, gather_objects
from chainrule.training.objectives import TrainBatch
from chainrule.training.optim import get_lr

log = logging.getLogger("chainrule.training.loop")  # the loop's logger, as before the split


class _EvaluateAndCheckpoint:
    """Evaluation and checkpoints of :class:`chainrule.training.loop._Run` (a mixin)."""

    # -- resume ----------------------------------------------------------------------------
    def _resume(self) -> None:
        found = ckpt_io.find_checkpoint(self.out_dir)
        if found is None:
            raise ConfigError(f"--resume was given but {str(self.out_dir)!r} holds no training "
                              "checkpoint; drop --resume to start a new run.")
        state = ckpt_io.read_train_state(found, self.cfg.family)
        carried = ckpt_io.load_checkpoint(found, self.raw, self.optimizer, state, self.device)
        self.step, self.best_step = state["step"], state["best_step"]
        self.best_val = math.inf if state["best_val_loss"] is None else state["best_val_loss"]
        self.bad_evals = state["evals_without_improvement"]
        self.resumed_at = self.step
        if carried is not None:  # one list per rank, each {micro: state}
            mine = carried[self.dist.rank] if self.dist.rank < len(carried) else []
            self.carried = {m: s for m, s in zip(self.micros, mine)}
        self.metrics.truncate_after(self.step)

    def _save(self, improved: bool) -> None:
        carried = [self.carried.get(m) for m in self.micros] if self.recurrent else None
        every = gather_objects(
            [None if s is None else _to_cpu(s) for s in carried] if carried else None, self.dist)
        # FSDP gathers the full weights and optimizer state to rank 0 (every rank takes part)
        ckpt_files = self.strategy.for_checkpoint(self.raw, self.optimizer, self.step)
        if self.dist.is_main:
            state = {
                "family": self.cfg.family,
                "step": self.step,
                "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
                "best_step": self.best_step,
                "evals_without_improvement": self.bad_evals,
                "lr": get_lr(self.step, self.cfg),
                "world_size": self.dist.world_size,
                "config": self.cfg.to_dict(),
            }
            carried_all = every if self.recurrent else None
            model, optimizer = ckpt_files
            if carried_all is not None and any(c is None or any(s is None for s in c)
                                               for c in carried_all):
                carried_all = None  # nothing carried yet (step 0): start afresh on resume
            last = ckpt_io.save_checkpoint(self.out_dir, model, optimizer,
                                           self.tokenizer, state, carried_all)
            if improved:
                ckpt_io.publish_best(self.out_dir, last)
        barrier(self.dist)

    @torch.no_grad()
    def _estimate(self, sampler: EvalSampler, evaluation: int) -> float:
        self.model.eval()
        total = torch.zeros((), device=self.device)
        n, W = self.cfg.eval_iters, self.dist.world_size
        # sharded weights are gathered by every rank together: all run the same number of
        # batches, a rank past the last one repeating a batch it does not count
        rounds = -(-n // W) * W if self.strategy.lockstep else n
        for i in range(self.dist.rank, rounds, W):
            b = sampler.batch(evaluation, min(i, n - 1))
            state = self.raw.init_state(b.x.shape[0], self.device) if self.recurrent else None
            with self.autocast:
                loss = self.objective.loss(self.eval_model, _train_batch(b, state)).float()
            if i < n:
                total += loss
        self.model.train()
        return all_reduce_sum(total, self.dist).item() / self.cfg.eval_iters

    def _check_finite(self, pending: list[tuple[int, torch.Tensor]]) -> list[float]:
        if not pending:
            return []
        values = all_reduce_mean(torch.stack([v for _, v in pending]), self.dist).tolist()
        for (step, _), v in zip(pending, values):
            if not math.isfinite(v):
                found = ckpt_io.find_checkpoint(self.out_dir)
                kept = (f"the last good checkpoint (step {self.last_saved}) is kept in "
                        f"{str(found)!r}" if found else "no checkpoint was written yet")
                raise TrainingError(
                    f"the training loss became {v} at step {step}, so training stopped and "
                    f"{kept}; lower learning_rate or raise warmup_iters, then try again.")
        return values

    def _evaluate(self, start: int, bar) -> tuple[float | None, bool]:
        """Estimate the losses, log them, checkpoint; return (validation loss, stop early?)."""
        cfg = self.cfg
        # batches of an evaluation depend on its step alone (resume-exact)
        tr = self._estimate(self.eval_train, self.step)
        va = self._estimate(self.eval_val, self.step) if self.eval_val else None
        score = va if va is not None else tr
        if not math.isfinite(score):
            self._check_finite([(self.step, torch.tensor(score))])
        improved = score < self.best_val
        if improved:
            self.best_val, self.best_step, self.bad_evals = score, self.step, 0
        elif self.step > start:
            self.bad_evals += 1
        rec = {"step": self.step, "train_loss": tr, "lr": get_lr(self.step, cfg)}
        if va is not None:
            rec["val_loss"] = va
        if self.on_evaluate is not None:
            plain = self.strategy.full_model(self.raw, self.step)  # FSDP: gathered to rank 0
            if self.dist.is_main:
                rec.update(self.on_evaluate(plain, self.step) or {})
        self.metrics.write(rec)
        self._save(improved)
        self.last_saved = self.step
        line = f"step {self.step}: train {tr:.4f}" + (f", val {va:.4f}" if va is not None else "")
        if self.progress:  # a terminal: above the progress bar
            bar.write(line)
        elif self.log_lines:  # a log file, a notebook, a script: the `chainrule` logger
            log.info(line)
        return va, bool(cfg.patience and self.bad_evals >= cfg.patience)


def _train_batch(b: Any, state: Any) -> TrainBatch:
    """The sampler's batch as the objective's :class:`TrainBatch`, with the carried state."""
    if isinstance(b, TrainBatch):
        return b.with_state(state)
    return TrainBatch(b.x, b.y, b.reset, state=state, attn_mask=getattr(b, "attn_mask", None),
                      positions=getattr(b, "positions", None))


def _to_cpu(state: Any) -> Any:
    if torch.is_tensor(state):
        return state.detach().cpu()
    return type(state)(_to_cpu(s) for s in state)

"""A reward model: a transformer with a scalar head, trained on pairs with the Bradley-Terry loss.

P(chosen > rejected) = sigma(r(x, y_c) - r(x, y_r)); the score r is a linear head on the body's
final hidden state at the last token (the EOS after the response), or on their mean over the
response tokens, or on both (``pooling``; see :mod:`chainrule.preferences.rm_features`). The body is any chainrule
model with ``hidden`` (a GPT trained here, the SmolLM2 import). With ``freeze`` the body is
fixed and its features are computed once, so training is a logistic regression on them; with a
LoRA config the body's adapters train with the head.

On disk (a directory): ``reward.json`` (format, version, settings, where the body is),
``head.safetensors``, and the body -- ``body/`` (a model directory with its tokenizer) when it
was trained, or, when frozen, the path of the model directory it came from plus the SHA-256
of its weights, checked on load (a frozen 135M-parameter body is not copied).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.evaluation.textscore import load_model_and_tokenizer
from chainrule.fileio import read_json, read_safetensors, write_json, write_safetensors
from chainrule.models.lora import LoRAConfig, add_lora, base_fingerprint
from chainrule.preferences.data import EncodedPair, PreferencePair, encode_pairs, pad_batch
from chainrule.preferences.rm_features import check_pooling, pair_features, pool_hidden
from chainrule.training.preference_losses import bradley_terry_loss

FORMAT = "chainrule-reward-model"
VERSION = 1


class RewardModel(nn.Module):
    """``body`` + ``head``: (B, T) ids, (B,) lengths and (B, T) response masks -> (B,) rewards."""

    def __init__(self, body: nn.Module, tokenizer: Any, *, freeze: bool = True,
                 lora: LoRAConfig | None = None, body_dir: str | None = None,
                 pooling: str = "last"):
        super().__init__()
        self.pooling = check_pooling(pooling)
        if not hasattr(body, "hidden"):
            raise ConfigError(f"a {getattr(body, 'family', type(body).__name__)} model has no "
                              "hidden states to put a reward head on; use a neural model.")
        self.body, self.tokenizer, self.freeze, self.body_dir = body, tokenizer, freeze, body_dir
        self.lora = lora
        if freeze or lora is not None:
            for p in body.parameters():
                p.requires_grad_(False)
        if lora is not None:
            add_lora(body, lora)
            self.freeze = False
        width = body.hidden(torch.tensor([[body.bos_id]], device=body.device))[0].shape[-1]
        width *= 2 if pooling == "last+mean" else 1
        self.head = nn.Linear(width, 1).to(body.device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def features(self, ids: torch.Tensor, lengths: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T), (B,), (B, T) response mask -> (B, C) pooled final hidden states."""
        h, _ = self.body.hidden(ids)
        return pool_hidden(h, lengths, mask, self.pooling)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(ids, lengths, mask)).squeeze(-1)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.body.eval()
        return self

    # -- text in, scores out -----------------------------------------------------------------
    def encode(self, pairs: Sequence[PreferencePair], max_length: int) -> list[EncodedPair]:
        """Pairs re-tokenised with the reward model's own tokenizer (any policy's text works)."""
        ctx = self.body.max_context or max_length
        return encode_pairs(pairs, self.tokenizer, bos_id=self.body.bos_id,
                            eos_id=self.body.eos_id, max_length=min(max_length, ctx))

    @torch.no_grad()
    def score_rows(self, rows: Sequence[Sequence[int]], batch_size: int = 16,
                   masks: Sequence[Sequence[bool]] | None = None) -> torch.Tensor:
        """Rewards of encoded rows (``masks``: their response masks, needed by mean pooling)."""
        was = self.training
        self.eval()
        masks = masks if masks is not None else [[]] * len(rows)
        out = []
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            ids, m, lengths = pad_batch(chunk, masks[i : i + batch_size], self.body.eos_id,
                                        self.device)
            out.append(self(ids, lengths, m if self.pooling != "last" else None).cpu())
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0)

    def score(self, prompts: Sequence[str], responses: Sequence[str], max_length: int = 256,
              batch_size: int = 16) -> list[float]:
        """r(prompt, response) for each pair of texts."""
        pairs = [PreferencePair(p, r, r) for p, r in zip(prompts, responses, strict=True)]
        enc = self.encode(pairs, max_length)
        return self.score_rows([e.chosen for e in enc], batch_size,
                               [e.chosen_mask for e in enc]).tolist()


def train_reward_model(rm: RewardModel, pairs: Sequence[EncodedPair], *, epochs: int = 2,
                       batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.0,
                       seed: int = 0, log: Any = None) -> list[float]:
    """Minimise the Bradley-Terry loss (AdamW, shuffled batches); mean loss per epoch."""
    if not pairs:
        raise ConfigError("no preference pairs to train the reward model on.")
    g = torch.Generator().manual_seed(seed)
    pad = rm.body.eos_id
    params = [p for p in rm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    cached = None
    if rm.freeze:  # the body never changes: compute its features once
        cached = pair_features(rm, pairs, batch_size=batch_size)
    rm.train()
    history = []
    for epoch in range(epochs):
        order = torch.randperm(len(pairs), generator=g).tolist()
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if cached is not None:
                rc = rm.head(cached[0][idx]).squeeze(-1)
                rr = rm.head(cached[1][idx]).squeeze(-1)
            else:
                rc, rr = _pair_scores(rm, [pairs[j] for j in idx], pad)
            loss = bradley_terry_loss(rc, rr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(pairs))
        if log:
            log(f"reward model epoch {epoch + 1}/{epochs}: Bradley-Terry loss {history[-1]:.4f}")
    rm.eval()
    return history


def _pair_scores(rm: RewardModel, batch: Sequence[EncodedPair], pad: int):
    rows = [e.chosen for e in batch] + [e.rejected for e in batch]
    masks = [e.chosen_mask for e in batch] + [e.rejected_mask for e in batch]
    ids, m, lengths = pad_batch(rows, masks, pad, rm.device)
    scores = rm(ids, lengths, m)
    return scores[: len(batch)], scores[len(batch):]


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def pairwise_report(margins: Sequence[float], bins: int = 5) -> dict[str, Any]:
    """Accuracy (with its Wilson interval) and calibration of P(chosen) = sigma(margin).

    Calibration folds each pair to the side the model favours: confidence max(p, 1-p) in
    [0.5, 1], binned; a calibrated model is right in a bin as often as its confidence says.
    """
    m = torch.tensor(list(margins), dtype=torch.float64)
    n = len(m)
    correct = int((m > 0).sum()) + 0.5 * int((m == 0).sum())
    lo, hi = wilson_interval(round(correct), n)
    p = torch.sigmoid(m)
    conf = torch.maximum(p, 1 - p)
    right = (m > 0).double()
    rows, ece = [], 0.0
    for b in range(bins):
        a, z = 0.5 + 0.5 * b / bins, 0.5 + 0.5 * (b + 1) / bins
        sel = (conf >= a) & ((conf < z) if b < bins - 1 else (conf <= z))
        if int(sel.sum()) == 0:
            continue
        c, acc = float(conf[sel].mean()), float(right[sel].mean())
        rows.append({"low": a, "high": z, "n": int(sel.sum()), "confidence": c, "accuracy": acc})
        ece += int(sel.sum()) / n * abs(c - acc)
    return {"pairs": n, "accuracy": correct / max(n, 1), "interval": [lo, hi],
            "mean_margin": float(m.mean()) if n else 0.0, "calibration": rows, "ece": ece}


def evaluate_reward_model(rm: RewardModel, pairs: Sequence[EncodedPair],
                          batch_size: int = 16) -> dict[str, Any]:
    """:func:`pairwise_report` of r(chosen) - r(rejected) on held-out pairs."""
    rc = rm.score_rows([e.chosen for e in pairs], batch_size, [e.chosen_mask for e in pairs])
    rr = rm.score_rows([e.rejected for e in pairs], batch_size, [e.rejected_mask for e in pairs])
    return pairwise_report((rc - rr).tolist())


def plot_calibration(report: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Reliability diagram of :func:`pairwise_report`: accuracy against confidence per bin."""
    from chainrule.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0.5, 1], [0.5, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    rows = report["calibration"]
    ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o",
            label=f"reward model (acc {100 * report['accuracy']:.1f}%)")
    for r in rows:
        ax.annotate(str(r["n"]), (r["confidence"], r["accuracy"]), fontsize=7)
    ax.set_xlim(0.5, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence max(P, 1-P)")
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title or "Reward model calibration (held-out pairs)")
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


# -- persistence ----------------------------------------------------------------------------
def save_reward_model(rm: RewardModel, directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "freeze": rm.freeze,
                            "lora": rm.lora.to_dict() if rm.lora else None,
                            "pooling": rm.pooling}
    if rm.freeze and rm.body_dir:
        meta["body_dir"] = str(Path(rm.body_dir).resolve())
        meta["body_fingerprint"] = base_fingerprint(rm.body)
    else:
        rm.body.save(directory / "body")
        src = Path(rm.body_dir) if rm.body_dir else None
        if src is not None and (src / "tokenizer.json").is_file():
            shutil.copyfile(src / "tokenizer.json", directory / "body" / "tokenizer.json")
        else:
            rm.tokenizer.save(directory / "body" / "tokenizer.json")
        meta["body_dir"] = "body"
    write_safetensors(directory / "head.safetensors",
                      {k: v.detach().cpu().contiguous() for k, v in rm.head.state_dict().items()})
    write_json(directory / "reward.json", meta)
    return directory


def load_reward_model(directory: str | os.PathLike) -> RewardModel:
    directory = Path(directory)
    meta = read_json(directory / "reward.json", what="reward model config")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{str(directory)!r} is not a chainrule reward model (no "
                               f"reward.json of format {FORMAT!r}); train one with `chainrule "
                               "reward train`.")
    if meta.get("version") != VERSION:
        raise ModelFormatError(f"{str(directory)!r} is reward-model format version "
                               f"{meta.get('version')}; this chainrule reads version {VERSION}.")
    body_dir = directory / meta["body_dir"]  # an absolute body_dir replaces the directory
    body, tokenizer = load_model_and_tokenizer(body_dir)
    if meta.get("body_fingerprint") and base_fingerprint(body) != meta["body_fingerprint"]:
        raise ModelFormatError(f"the body model {str(body_dir)!r} has changed since this reward "
                               "model was trained (its weights' SHA-256 differs); retrain it.")
    rm = RewardModel(body, tokenizer, freeze=True, body_dir=str(body_dir),
                     pooling=meta.get("pooling", "last"))
    rm.freeze = bool(meta.get("freeze", True))
    if meta.get("lora"):
        rm.lora = LoRAConfig.from_dict(meta["lora"])
    rm.head.load_state_dict(read_safetensors(directory / "head.safetensors"))
    return rm.eval()


__all__ = [
    "RewardModel",
    "evaluate_reward_model",
    "load_reward_model",
    "pairwise_report",
    "plot_calibration",
    "save_reward_model",
    "train_reward_model",
    "wilson_interval",
]

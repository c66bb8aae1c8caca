"""Preference pairs: reading, checking, splitting and encoding them.

A preference file is JSON Lines (optionally gzipped), one pair a line, in either shape:

    {"prompt": "...", "chosen": "...", "rejected": "..."}       responses given apart
    {"chosen": "<dialogue>", "rejected": "<dialogue>"}           HH-RLHF: whole dialogues

An HH-RLHF pair is two dialogues that differ in their final assistant turn; the prompt is
everything up to and including the last ``"\\n\\nAssistant:"`` the two share, and each
response is the rest. Pairs whose two responses are identical teach nothing: they are counted
and skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import DataError
from chainrule.fileio import atomic_open

ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class PreferencePair:
    """A prompt and two responses to it, ``chosen`` preferred over ``rejected``."""

    prompt: str
    chosen: str
    rejected: str


@dataclass
class ReadReport:
    """What reading a preference file kept and skipped."""

    kept: int = 0
    identical: int = 0  # chosen == rejected: skipped


def split_dialogue_pair(chosen: str, rejected: str) -> PreferencePair:
    """An HH-RLHF pair of whole dialogues -> (shared prompt, chosen reply, rejected reply).

    >>> split_dialogue_pair("\\n\\nHuman: hi\\n\\nAssistant: hello", "\\n\\nHuman: hi\\n\\nAssistant: go")
    PreferencePair(prompt='\\n\\nHuman: hi\\n\\nAssistant:', chosen=' hello', rejected=' go')
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    cut = chosen.rfind(ASSISTANT, 0, n)  # the last assistant turn the two still share
    cut = cut + len(ASSISTANT) if cut >= 0 else n
    return PreferencePair(chosen[:cut], chosen[cut:], rejected[cut:])


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_preferences(path: str | os.PathLike, report: ReadReport | None = None
                     ) -> list[PreferencePair]:
    """Every usable pair of a preference file (``.jsonl`` or ``.jsonl.gz``), in file order.

    Pairs whose responses are identical are skipped and counted in ``report.identical``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"preference file {str(path)!r} does not exist; give a JSONL file of "
                        "prompt/chosen/rejected records.")
    report = report if report is not None else ReadReport()
    out = []
    with _open_text(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i} is not valid JSON ({e.msg}); each line must be "
                                "one JSON object.") from None
            out_pair = _pair(rec, f"{path}:{i}")
            if out_pair.chosen == out_pair.rejected:
                report.identical += 1
                continue
            out.append(out_pair)
    report.kept = len(out)
    if not out:
        raise DataError(f"{path} holds no usable preference pair ({report.identical} had "
                        "chosen equal to rejected).")
    return out


def _pair(rec: Any, where: str) -> PreferencePair:
    if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str)
                                            for k in ("chosen", "rejected")):
        raise DataError(f"{where} needs string fields 'chosen' and 'rejected' (and optionally "
                        "'prompt').")
    if "prompt" in rec:
        if not isinstance(rec["prompt"], str):
            raise DataError(f"{where}: 'prompt' must be a string.")
        return PreferencePair(rec["prompt"], rec["chosen"], rec["rejected"])
    return split_dialogue_pair(rec["chosen"], rec["rejected"])


def write_preferences(pairs: Iterable[PreferencePair], path: str | os.PathLike,
                      extra: Sequence[dict] | None = None) -> Path:
    """Write pairs as JSONL (atomically); ``extra[i]`` adds fields to line i (e.g. judge scores)."""
    pairs = list(pairs)
    with atomic_open(path, "w", encoding="utf-8") as f:
        for i, p in enumerate(pairs):
            rec = {**asdict(p), **(extra[i] if extra else {})}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return Path(path)


def split_of(prompt: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
             seed: int = 0) -> str:
    """``train``/``validation``/``test`` for a prompt, from SHA-256 of (seed, prompt).

    Deterministic and order-free: the same prompt always lands in the same split, so two pairs
    sharing a prompt never straddle train and test.
    """
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "validation" if u < fractions[0] + fractions[1] else "test"


def split_pairs(pairs: Sequence[PreferencePair], fractions=(0.8, 0.1, 0.1), seed: int = 0
                ) -> dict[str, list[PreferencePair]]:
    """Pairs by split (:func:`split_of` on each prompt)."""
    out: dict[str, list[PreferencePair]] = {"train": [], "validation": [], "test": []}
    for p in pairs:
        out[split_of(p.prompt, fractions, seed)].append(p)
    return out


@dataclass
class EncodedPair:
    """Token ids of prompt+chosen and prompt+rejected (each starting with BOS) and the masks of
    their response tokens (True on the response and its EOS)."""

    chosen: list[int]
    chosen_mask: list[bool]
    rejected: list[int]
    rejected_mask: list[bool]


def encode_response(tokenizer: Any, prompt: str, response: str, *, bos_id: int, eos_id: int,
                    max_length: int, max_response: int | None = None
                    ) -> tuple[list[int], list[bool]]:
    """BOS + prompt + response + EOS as ids, and the response mask; the response is cut to
    ``max_response`` tokens and the prompt from the left so that the whole fits ``max_length``."""
    p = list(tokenizer.encode(prompt)) if prompt else []
    r = [*tokenizer.encode(response), eos_id]
    budget = max_response or max_length // 2
    r = r[: max(1, min(budget, max_length - 2))]
    p = p[max(0, len(p) - (max_length - 1 - len(r))):]
    ids = [bos_id, *p, *r]
    return ids, [False] * (1 + len(p)) + [True] * len(r)


def encode_pairs(pairs: Sequence[PreferencePair], tokenizer: Any, *, bos_id: int, eos_id: int,
                 max_length: int, max_response: int | None = None) -> list[EncodedPair]:
    out = []
    for p in pairs:
        c, cm = encode_response(tokenizer, p.prompt, p.chosen, bos_id=bos_id, eos_id=eos_id,
                                max_length=max_length, max_response=max_response)
        r, rm = encode_response(tokenizer, p.prompt, p.rejected, bos_id=bos_id, eos_id=eos_id,
                                max_length=max_length, max_response=max_response)
        out.append(EncodedPair(c, cm, r, rm))
    return out


def pad_batch(rows: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], pad_id: int,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids, (B, T) masks and (B,) lengths."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    return ids.to(device), mask.to(device), lengths.to(device)


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts for rollouts: a preference file's distinct prompts (``.jsonl``/``.jsonl.gz``, in
    first-seen order) or a text file with one prompt per line (``\\n`` spelled out as ``\\\\n``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompt file {str(path)!r} does not exist; give a text file (one prompt "
                        "a line) or a preference JSONL file.")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return list(dict.fromkeys(p.prompt for p in read_preferences(path)))
    with _open_text(path) as f:
        out = [line.rstrip("\n").replace("\\n", "\n") for line in f if line.strip()]
    if not out:
        raise DataError(f"{path} holds no prompts; write one prompt per line.")
    return out


__all__ = [
    "ASSISTANT",
    "EncodedPair",
    "PreferencePair",
    "ReadReport",
    "encode_pairs",
    "encode_response",
    "pad_batch",
    "read_preferences",
    "read_prompts",
    "split_dialogue_pair",
    "split_of",
    "split_pairs",
    "write_preferences",
]

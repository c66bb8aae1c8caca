"""Supervised fine-tuning data: chats -> token ids with an answer mask -> batches for the loop.

A fine-tuning example is a conversation (``{"messages": [{"role": ..., "content": ...}]}``) or a
prompt/completion pair (a user turn and an assistant turn). It is rendered with the model's chat
template (:mod:`chainrule.tokenizers.chat`) and encoded the way decoding will see it: the text
*before* each assistant answer is encoded as a prompt is at generation time (the template's
``<|im_start|>assistant\\n`` included), and the answer after it, so training and generation cut
the text into the same tokens. Every token is marked as *answer* or not:

    <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n  Hello!<|im_end|>  \\n
    ---------------- context (mask 0) -------------------  -- answer (1) --  (0)

The answer is the assistant's content and the template's end-of-turn marker (``<|im_end|>``),
so the model learns to stop; with the ``plain`` template (models without a chat template) it is
``" {content}\\n"``, and an EOS after the last answer. With ``completion_only=False`` every
token after the first counts (the whole sequence).

Batches (:class:`SFTData`) are rows of at most ``block_size`` inputs: one example per row,
right-padded (``pack=False``), or several examples packed into a row (``pack=True``) with a
document mask and positions restarting at 0 per example, so each example is predicted exactly
as if alone (:func:`chainrule.models.layers.document_mask`). Like the pretraining samplers,
training batches are a pure function of (seed, step, micro-batch), so resume is exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.errors import DataError, TokenizerError
from chainrule.models.layers import document_mask
from chainrule.tokenizers.chat import ChatTemplate, get_template
from chainrule.training.objectives import IGNORE, TrainBatch

ROLES = ("system", "user", "assistant")


@dataclass
class SFTExample:
    """One encoded conversation: ``ids`` (BOS first) and ``answer`` (one flag per id)."""

    ids: list[int]
    answer: list[bool]


@dataclass
class EncodeReport:
    """What :func:`encode_examples` did: examples kept, cut (too long) and dropped."""

    kept: int = 0
    cut: int = 0
    dropped: int = 0  # cut so short that no answer token was left


# -- reading ------------------------------------------------------------------------------------
def check_messages(messages: Any, where: str = "the conversation") -> list[dict[str, str]]:
    """``messages`` as a checked list of {role, content}; one sentence for what is wrong.

    >>> check_messages([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Yo'}]
    """
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise DataError(f"{where} has no messages; give a non-empty list of "
                        "{'role': ..., 'content': ...}.")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {i} is not a {{'role': str, 'content': str}} "
                            "mapping.")
        if m.get("role") not in ROLES:
            raise DataError(f"{where}: message {i} has role {m.get('role')!r}, which the chat "
                            f"templates do not know; use one of {', '.join(ROLES)}.")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(f"{where} has no assistant turn, so there is nothing to learn; add the "
                        "answer as a message with role 'assistant'.")
    return out


def as_messages(record: Any, where: str = "the record") -> list[dict[str, str]]:
    """A JSONL record -- ``{"messages": [...]}`` or ``{"prompt", "completion"}`` -- as messages."""
    if isinstance(record, Mapping) and "messages" in record:
        return check_messages(record["messages"], where)
    if isinstance(record, Mapping) and "prompt" in record and "completion" in record:
        p, c = record["prompt"], record["completion"]
        if not isinstance(p, str) or not isinstance(c, str):
            raise DataError(f"{where}: prompt and completion must be strings.")
        system = record.get("system")
        head = [{"role": "system", "content": system}] if isinstance(system, str) else []
        return check_messages([*head, {"role": "user", "content": p},
                               {"role": "assistant", "content": c}], where)
    raise DataError(f"{where} is neither {{\"messages\": [...]}} nor {{\"prompt\": ..., "
                    "\"completion\": ...}}; write one of these per line.")


def read_sft_jsonl(path: str | os.PathLike) -> list[list[dict[str, str]]]:
    """Every conversation of a JSONL file (blank lines skipped), checked."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read {str(path)!r} ({e.strerror}); check the path.") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{str(path)!r} line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where} is not valid JSON ({e.msg}); fix or remove it.") from None
        out.append(as_messages(record, where))
    if not out:
        raise DataError(f"{str(path)!r} holds no examples; write one JSON object per line.")
    return out


# -- encoding -----------------------------------------------------------------------------------
def _pieces(messages: list[dict[str, str]], template: ChatTemplate) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_answer) pieces, in order.

    Each answer is what rendering the assistant's message adds after the generation prompt, up
    to and including the template's end-of-turn marker; the rest is context.
    """
    pieces: list[tuple[str, bool]] = []
    done = ""
    marker = template.stop[0] if template.name == "chatml" else None
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = template.render(messages[:i], add_generation_prompt=True)
        full = template.render(messages[: i + 1], add_generation_prompt=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):  # pragma: no cover
            raise TokenizerError(f"the {template.name} template does not render turn by turn.")
        pieces.append((prompt[len(done):], False))
        answer = full[len(prompt):]
        glue = ""
        if marker and marker in answer:
            cut = answer.index(marker) + len(marker)
            answer, glue = answer[:cut], answer[cut:]
        pieces.append((answer, True))
        if glue:
            pieces.append((glue, False))
        done = full
    rest = template.render(messages, add_generation_prompt=False)[len(done):]
    if rest:
        pieces.append((rest, False))
    return pieces


def encode_chat(messages: Sequence[Mapping[str, str]], tokenizer: Any,
                template: str | ChatTemplate = "chatml", *, bos_id: int, eos_id: int | None = None,
                completion_only: bool = True) -> SFTExample:
    """Token ids of a conversation (BOS first, as decoding puts it) and its answer flags.

    Args:
        messages: the conversation (roles system/user/assistant; at least one assistant turn).
        tokenizer: encodes each piece with ``allow_special=True`` (``<|im_start|>`` is one id).
        template: ``chatml``, ``plain`` or a :class:`ChatTemplate`.
        bos_id, eos_id: the model's; a leading BOS of the rendered text is not doubled, and the
            ``plain`` template ends the last answer with ``eos_id``.
        completion_only: False flags every token after the first (whole-sequence loss).
    """
    template = get_template(template)
    messages = check_messages(messages)
    ids, answer = [bos_id], [False]
    for k, (text, is_answer) in enumerate(_pieces(messages, template)):
        piece = list(tokenizer.encode(text, allow_special=True))
        if k == 0 and piece[:1] == [bos_id]:
            piece = piece[1:]
        ids += piece
        answer += [is_answer] * len(piece)
    if template.name == "plain" and eos_id is not None and messages[-1]["role"] == "assistant":
        ids.append(eos_id)
        answer.append(True)
    if not completion_only:
        answer = [False] + [True] * (len(ids) - 1)
    return SFTExample(ids, answer)


def encode_examples(conversations: Sequence[Sequence[Mapping[str, str]]], tokenizer: Any,
                    template: str | ChatTemplate, *, bos_id: int, eos_id: int | None,
                    max_length: int, too_long: str = "cut", completion_only: bool = True
                    ) -> tuple[list[SFTExample], EncodeReport]:
    """Encode every conversation; examples longer than ``max_length`` + 1 ids are cut or refused.

    ``max_length`` is the model's context (inputs per row); an example of n ids predicts n - 1
    targets from n - 1 inputs. ``too_long="cut"`` keeps the first ``max_length + 1`` ids (an
    example left without answer tokens is dropped) and counts them; ``"refuse"`` raises.
    """
    if too_long not in ("cut", "refuse"):
        raise DataError(f"too_long must be 'cut' or 'refuse', not {too_long!r}.")
    report, out = EncodeReport(), []
    for i, conv in enumerate(conversations):
        ex = encode_chat(conv, tokenizer, template, bos_id=bos_id, eos_id=eos_id,
                         completion_only=completion_only)
        if len(ex.ids) > max_length + 1:
            if too_long == "refuse":
                raise DataError(f"example {i} is {len(ex.ids)} tokens long, longer than the "
                                f"{max_length + 1} the context allows; shorten it, raise "
                                "block_size, or let long examples be cut (--too-long cut).")
            report.cut += 1
            ex = SFTExample(ex.ids[: max_length + 1], ex.answer[: max_length + 1])
        if not any(ex.answer[1:]):
            report.dropped += 1
            continue
        out.append(ex)
    report.kept = len(out)
    if not out:
        raise DataError("no example has an answer token left within the context; raise "
                        "block_size or shorten the prompts.")
    return out, report


def split_examples(examples: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded shuffle, then the last ``val_fraction`` (at least one when > 0) held out."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_val = 0 if val_fraction <= 0 else max(1, round(val_fraction * len(examples)))
    if n_val >= len(examples):
        raise DataError(f"{len(examples)} examples cannot be split with val_fraction "
                        f"{val_fraction}; give more examples or val_fraction=0.")
    keep = [examples[i] for i in order[: len(examples) - n_val]]
    return keep, [examples[i] for i in order[len(examples) - n_val:]]


# -- rows and batches ---------------------------------------------------------------------------
@dataclass
class _Row:
    x: list[int]
    y: list[int]
    doc: list[int]
    pos: list[int]


def _rows(examples: Sequence[SFTExample], block_size: int, pack: bool) -> list[_Row]:
    """Inputs/targets per row; packed rows hold whole examples back to back (first fit in order)."""
    rows: list[_Row] = []
    for ex in examples:
        x, y = ex.ids[:-1], [t if a else IGNORE for t, a in zip(ex.ids[1:], ex.answer[1:])]
        if not (pack and rows and len(rows[-1].x) + len(x) <= block_size):
            rows.append(_Row([], [], [], []))
        r = rows[-1]
        d = r.doc[-1] + 1 if r.doc else 0
        r.x += x
        r.y += y
        r.doc += [d] * len(x)
        r.pos += list(range(len(x)))
    return rows


class SFTData:
    """Fine-tuning rows, and the samplers the training loop draws batches from.

    The loop calls :meth:`train_sampler` / :meth:`eval_sampler`; each sampler's
    ``batch(step, micro)`` returns a :class:`~chainrule.training.objectives.TrainBatch` with the
    loss mask, and (packed) the document mask and restarted positions.

    Args:
        examples: encoded examples, each at most ``block_size + 1`` ids.
        block_size: inputs per row.
        pack: several examples per row, with document masking (False: one per row, padded).
        pad_id: the id padding inputs (never a target).
    """

    def __init__(self, examples: Sequence[SFTExample], block_size: int, *, pack: bool,
                 pad_id: int):
        if not examples:
            raise DataError("no fine-tuning examples to build batches from.")
        self.block_size, self.pack, self.pad_id = block_size, pack, pad_id
        self.rows = _rows(examples, block_size, pack)
        self.n_examples = len(examples)
        self.answer_tokens = sum(sum(ex.answer[1:]) for ex in examples)

    def __len__(self) -> int:
        return len(self.rows)

    def collate(self, rows: Sequence[_Row], device: torch.device | str = "cpu") -> TrainBatch:
        """Rows -> a right-padded :class:`TrainBatch` (padding: pad_id in, IGNORE out)."""
        T = max(len(r.x) for r in rows)
        B = len(rows)
        x = torch.full((B, T), self.pad_id, dtype=torch.long)
        y = torch.full((B, T), IGNORE, dtype=torch.long)
        doc = torch.full((B, T), -1, dtype=torch.long)
        pos = torch.zeros((B, T), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.x)
            x[i, :n], y[i, :n] = torch.tensor(r.x), torch.tensor(r.y)
            doc[i, :n], pos[i, :n] = torch.tensor(r.doc), torch.tensor(r.pos)
        x, y = x.to(device), y.to(device)
        mask = y != IGNORE
        # reset: a recurrent model starts every batch afresh (rows are separate examples)
        if not self.pack:
            return TrainBatch(x, y, reset=True, loss_mask=mask)
        doc, pos = doc.to(device), pos.to(device)
        return TrainBatch(x, y, reset=True, loss_mask=mask, attn_mask=document_mask(doc),
                          positions=pos)

    def train_sampler(self, cfg: Any, device: torch.device, micro_batches: int = 1
                      ) -> _ShuffledRows:
        return _ShuffledRows(self, cfg.batch_size, micro_batches, cfg.seed, device)

    def eval_sampler(self, cfg: Any, device: torch.device, what: str = "") -> _OrderedRows:
        return _OrderedRows(self, cfg.batch_size, device)


class _ShuffledRows:
    """Each epoch a seeded permutation of the rows; batch (step, micro) depends only on them."""

    def __init__(self, data: SFTData, batch_size: int, micro_batches: int, seed: int,
                 device: torch.device):
        self.data, self.B, self.micros = data, batch_size, micro_batches
        self.seed, self.device = seed, device

    def _order(self, epoch: int) -> np.ndarray:
        if getattr(self, "_epoch", None) != epoch:
            rng = np.random.Generator(np.random.PCG64([self.seed, 2, epoch]))
            self._epoch, self._perm = epoch, rng.permutation(len(self.data))
        return self._perm

    def batch(self, step: int, micro: int) -> TrainBatch:
        R = len(self.data)
        first = (step * self.micros + micro) * self.B
        picks = []
        for g in range(first, first + self.B):
            epoch, k = divmod(g, R)
            picks.append(self.data.rows[self._order(epoch)[k]])
        return self.data.collate(picks, self.device)


class _OrderedRows:
    """Evaluation batches: rows in order, the same at every evaluation (cycling if needed)."""

    def __init__(self, data: SFTData, batch_size: int, device: torch.device):
        self.data, self.B, self.device = data, min(batch_size, len(data)), device

    def batch(self, evaluation: int, i: int) -> TrainBatch:
        R = len(self.data)
        return self.data.collate([self.data.rows[(i * self.B + j) % R] for j in range(self.B)],
                                 self.device)


__all__ = [
    "ROLES",
    "EncodeReport",
    "SFTData",
    "SFTExample",
    "as_messages",
    "check_messages",
    "encode_chat",
    "encode_examples",
    "read_sft_jsonl",
    "split_examples",
]

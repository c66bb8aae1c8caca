"""An independent reference for multiple-choice scoring, written out the slow way.

lm-evaluation-harness scores a multiple-choice example by the summed log-probability of each
choice after the context, where the continuation is ``delimiter + choice`` and its tokens are
those of ``encode(context + delimiter + choice)`` after the first ``len(encode(context))``
(the pair tokenised together, split where the context's own tokens end). ``acc`` is right when
the largest sum belongs to the gold choice, ``acc_norm`` when the largest sum divided by
``len(choice)`` (the choice's length in characters, without the delimiter) does; ties go to the
first choice (``argmax``).

This module shares no code with :mod:`chainrule.prompting`: it runs one full forward pass per
choice through whatever ``logits`` function it is given (a ``transformers`` model in the tests and
in ``bench/bench_prompting.py --mc-reference``), so the harness's batching, prompt cache and
tokenisation split can be checked against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def reference_multiple_choice(
    logits: Callable[[torch.Tensor], torch.Tensor],
    encode: Callable[[str], list[int]],
    contexts: Sequence[str],
    choices: Sequence[Sequence[str]],
    golds: Sequence[int],
    delimiter: str = " ",
    prefix: Sequence[int] = (),
) -> dict[str, list]:
    """Per example: the choices' log-probabilities, the choice ``acc`` and ``acc_norm`` pick
    (``pred``, ``pred_norm``: indices) and whether each is right (``acc``, ``acc_norm``: 0/1).

    Args:
        logits: ``(1, T) ids -> (1, T, V)`` next-token logits.
        encode: text -> token ids, without special tokens.
        contexts: one prompt per example (may be empty).
        choices: the choices of each example.
        golds: the index of each example's right choice.
        delimiter: put between the context and each choice.
        prefix: ids put before every context (the model's start token).
    """
    out: dict[str, list] = {"logprobs": [], "pred": [], "pred_norm": [], "acc": [],
                            "acc_norm": []}
    for context, opts, gold in zip(contexts, choices, golds):
        ctx = list(encode(context)) if context else []
        sums = []
        for choice in opts:
            whole = list(encode(context + delimiter + choice))
            cont = whole[len(ctx):]
            ids = [*prefix, *ctx, *cont]
            with torch.no_grad():
                lp = torch.log_softmax(logits(torch.tensor([ids])).double(), dim=-1)[0]
            start = len(prefix) + len(ctx)
            sums.append(sum(float(lp[t - 1, ids[t]]) for t in range(start, len(ids))))
        best = max(range(len(opts)), key=lambda i: (sums[i], -i))
        best_norm = max(range(len(opts)), key=lambda i: (sums[i] / max(1, len(opts[i])), -i))
        out["logprobs"].append(sums)
        out["pred"].append(best)
        out["pred_norm"].append(best_norm)
        out["acc"].append(int(best == gold))
        out["acc_norm"].append(int(best_norm == gold))
    return out


__all__ = ["reference_multiple_choice"]

"""Scores of prompted answers.

Multiple choice, as lm-evaluation-harness computes them: each choice c is scored by
``log P(delimiter + c | prompt)`` summed over its tokens; ``acc`` takes the highest sum,
``acc_norm`` the highest sum divided by the choice's length in **characters** (``len(c)`` of the
choice text, without the delimiter -- lm-evaluation-harness's ``acc_norm``), so long choices are
not penalised for having more tokens. Ties go to the first choice.

Generation, after :func:`normalise` (strip, case-fold, collapse spaces): ``exact_match``,
token ``f1`` (SQuAD's bag-of-words F1), ``chrf`` (sacreBLEU's corpus chrF, the ``mt`` extra) and
``rouge_l`` (Google's ``rouge-score`` package, the ``prompt`` extra).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from chainrule.errors import ConfigError


def choice_length(choice: str) -> int:
    """acc_norm's normaliser: the number of characters of the choice text (at least 1).

    >>> choice_length("Paris"), choice_length("São Paulo")
    (5, 9)
    """
    return max(1, len(choice))


def pick(logprobs: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """(acc's choice, acc_norm's choice) from each choice's summed log-probability."""
    lp = np.asarray(logprobs, dtype=np.float64)
    norm = lp / np.array([choice_length(c) for c in choices], dtype=np.float64)
    return int(np.argmax(lp)), int(np.argmax(norm))


def normalise(text: str) -> str:
    """>>> normalise("  Paris\\n ")
    'paris'"""
    return " ".join(text.casefold().split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalise(prediction) == normalise(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of the precision and recall of the shared words.

    >>> round(token_f1("the cat sat", "the cat"), 3)
    0.8
    """
    p, g = normalise(prediction).split(), normalise(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def chrf(predictions: Sequence[str], golds: Sequence[str]) -> float:
    """sacreBLEU's corpus-level chrF (0-100)."""
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("chrF needs sacrebleu, which is not installed; install it with "
                          "pip install 'chainrule[prompt]' (or [mt]).") from None
    return float(sacrebleu.corpus_chrf(list(predictions), [list(golds)]).score)


def rouge_l(predictions: Sequence[str], golds: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (0-100) of Google's ``rouge-score`` (stemmed)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ConfigError("ROUGE-L needs rouge-score, which is not installed; install it with "
                          "pip install 'chainrule[prompt]'.") from None
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    if not predictions:
        return 0.0
    return 100 * float(np.mean([scorer.score(g, p)["rougeL"].fmeasure
                                for p, g in zip(predictions, golds)]))


def generation_score(metric: str, predictions: Sequence[str], golds: Sequence[str]) -> float:
    """The task's metric over a test set (0-1 for exact_match and f1, 0-100 for chrf, rouge_l)."""
    if metric == "exact_match":
        return float(np.mean([exact_match(p, g) for p, g in zip(predictions, golds)]))
    if metric == "f1":
        return float(np.mean([token_f1(p, g) for p, g in zip(predictions, golds)]))
    if metric == "chrf":
        return chrf(predictions, golds)
    if metric == "rouge_l":
        return rouge_l(predictions, golds)
    raise ConfigError(f"unknown metric {metric!r}.")


__all__ = ["choice_length", "chrf", "exact_match", "generation_score", "normalise", "pick",
           "rouge_l", "token_f1"]

"""Frame lines the way a stream-trained model saw them.

``chainrule train`` with ``boundaries=none`` (the default) trains on the corpus as one stream:
the windows never hold ``<s>`` or ``</s>``, and a line is preceded and ended by the newline
token. Scoring such a model's lines as ``<s> ids </s>`` asks it for ``P(first | <s>)`` and
``P(</s> | line)``, neither of them trained (a char GPT on Tiny Shakespeare: test perplexity
16.4 instead of 8.6). So where the tokenizer spells ``"\\n"`` as exactly one token, such a model
scores a line as ``[nl] ids [nl]``: the newline is the context of the first token, as ``<s>``
is, and the scored end of the line, as ``</s>`` is (a perplexity then counts the newline as the
end-of-line token, exactly where ``</s>`` is counted for other models). Where it cannot (a word
tokenizer drops newlines) the framing stays ``<s> ids </s>`` and one warning says so.

:func:`apply_training_framing` records the choice on the model as ``line_frame`` (the ids that
open and close a line), which :func:`chainrule.evaluation.textscore.frame` reads; every
evaluator frames through that function. :func:`training_boundaries` reads what a model directory
recorded (``train_state.json``'s ``config.boundaries``, the finished run's or else the
checkpoint's in ``last/``). A fine-tuned chat model (``sft.json``, ``chat_template.json``,
``preference_run.json``) reads its prompts after ``<s>`` and is left as it is; so are n-gram,
masked and conditional models, and models whose directory records no boundaries.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError

log = logging.getLogger("chainrule.evaluation.stream_framing")

# files of runs that start their text at <s> whatever their TrainConfig.boundaries says
_BOS_FRAMED_RUNS = ("sft.json", "chat_template.json", "preference_run.json")


def training_boundaries(directory: str | os.PathLike) -> str | None:
    """``"none"`` / ``"lines"``: how the run that wrote ``directory`` framed its training text,
    from its ``train_state.json`` (else ``last/train_state.json``); None when no record says
    (an imported, n-gram, fine-tuned or unreadable record)."""
    d = Path(directory)
    if not d.is_dir() or any((d / name).exists() for name in _BOS_FRAMED_RUNS):
        return None
    for path in (d / "train_state.json", d / "last" / "train_state.json"):
        if path.is_file():
            try:
                config = json.loads(path.read_text(encoding="utf-8")).get("config")
            except (OSError, ValueError, AttributeError):
                return None
            value = config.get("boundaries") if isinstance(config, dict) else None
            return value if value in ("none", "lines") else None
    return None


def newline_id(tokenizer: Any) -> int | None:
    """The id of ``"\\n"`` when the tokenizer spells it as exactly one ordinary token."""
    try:
        ids = list(tokenizer.encode("\n"))
    except (ChainruleError, ValueError, KeyError):  # a tokenizer that refuses the text
        return None
    if len(ids) != 1 or ids[0] == getattr(tokenizer, "unk_id", None):
        return None
    return int(ids[0])


def apply_training_framing(model: Any, tokenizer: Any, boundaries: str | None,
                           where: str = "") -> Any:
    """Make :func:`~chainrule.evaluation.textscore.frame` frame ``model``'s lines as its
    training did: with ``boundaries="none"`` each line as ``[nl] ids [nl]`` (``model.line_frame
    = (nl, nl)``), or, without a one-token newline, as before with one warning. Other
    boundaries, and n-gram, masked and conditional models, are left unchanged. Returns
    ``model``.

    Example: a char model trained with ``boundaries=none`` whose ``"\\n"`` is id 0 frames the
    ids ``[5, 6]`` as ``[0, 5, 6, 0]``.
    """
    if boundaries != "none" or getattr(model, "family", "") == "ngram" \
            or getattr(model, "masked", False) or getattr(model, "conditional", False):
        return model
    nl = newline_id(tokenizer)
    if nl is not None:
        model.line_frame = (nl, nl)
        return model
    at = f"{where}: " if where else ""
    log.warning(f"{at}this model was trained as one stream without sentence boundaries "
                "(boundaries=none) and its tokenizer has no newline token to frame lines with, "
                "so per-line scores condition on an untrained <s>; train with boundaries=lines "
                "to score sentences.")
    return model


__all__ = ["apply_training_framing", "newline_id", "training_boundaries"]

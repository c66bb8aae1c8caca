"""Decoding, written once over the ``LanguageModel`` interface: greedy, sampling (temperature,
top-k, top-p, min-p, repetition penalty), beam search, streaming, and scoring helpers."""

from chainrule.decoding.beam import beam_search
from chainrule.decoding.config import STRATEGIES, GenerationConfig
from chainrule.decoding.generate import StreamEvent, draw, generate, stream
from chainrule.decoding.scoring import (
    TextScore,
    continuation_logprob,
    score_continuations,
    score_text,
    score_tokens,
    split_continuation,
    text_continuation_logprob,
)
from chainrule.decoding.session import Completion, PromptTruncatedWarning
from chainrule.decoding.transforms import (
    compose,
    min_p,
    repetition_penalty,
    sampling_transform,
    temperature,
    top_k,
    top_p,
)

__all__ = [
    "STRATEGIES",
    "Completion",
    "GenerationConfig",
    "PromptTruncatedWarning",
    "StreamEvent",
    "TextScore",
    "beam_search",
    "compose",
    "continuation_logprob",
    "draw",
    "generate",
    "min_p",
    "repetition_penalty",
    "sampling_transform",
    "score_continuations",
    "score_text",
    "score_tokens",
    "split_continuation",
    "stream",
    "temperature",
    "text_continuation_logprob",
    "top_k",
    "top_p",
]

"""``GenerationConfig``: every decoding knob in one frozen dataclass, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chainrule.errors import ConfigError

STRATEGIES = ("greedy", "sample", "beam")


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode. All problems are collected and raised together as one ``ConfigError``.

    Attributes:
        strategy: ``greedy`` (arg-max), ``sample`` (ancestral sampling through the transforms)
            or ``beam`` (beam search with length normalisation).
        max_new_tokens: most tokens generated per output (EOS counts as one).
        temperature: sampling temperature, >= 0; 0 means greedy.
        top_k: sample only among the k most probable tokens (None: no limit).
        top_p: nucleus sampling: the smallest set of tokens whose mass reaches top_p, in (0, 1].
        min_p: drop tokens less probable than min_p x the most probable one, in [0, 1).
        repetition_penalty: > 0; > 1 discourages tokens already in the prompt or output.
        num_beams: beams per prompt for ``beam``.
        length_penalty: beam score = sum of log-probs / (generated length ** length_penalty);
            0 compares raw sums (favours short outputs), 1 compares per-token averages.
        n: outputs per prompt: independent samples, or the n best beams (n <= num_beams).
        stop: strings that end an output when they appear in its decoded text (not included
            in the output). Needs a tokenizer.
        seed: makes sampling reproducible; None draws a fresh seed (reported in the results).
        ignore_eos: keep generating after EOS (benchmarks); EOS is then an ordinary token.
        truncate: cut a prompt longer than the model's context from the left (with a warning)
            instead of refusing it.
        use_cache: decode incrementally through the model's state (``start``/``step``); False
            recomputes ``logprobs`` on the whole prefix every step (slow; for checking).
        fast_path: use a family's fast incremental decoder when one exists (GPT: a lean step,
            CUDA graphs on GPU); False always calls the model's own ``step``.
        allow_special: let special tokens other than EOS (``<s>``, ``<pad>``, ``<unk>``, chat
            markers) be generated; by default they are masked out (they never belong in text).
    """

    strategy: str = "sample"
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    num_beams: int = 4
    length_penalty: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None
    ignore_eos: bool = False
    truncate: bool = True
    use_cache: bool = True
    fast_path: bool = True
    allow_special: bool = False
    # transformers' names, accepted as aliases: do_sample=False is greedy, True sampling;
    # num_return_sequences is n
    do_sample: bool | None = None
    num_return_sequences: int | None = None

    def __post_init__(self) -> None:
        if self.do_sample is not None and self.strategy != "beam":
            object.__setattr__(self, "strategy", "sample" if self.do_sample else "greedy")
        if self.num_return_sequences is not None:
            object.__setattr__(self, "n", self.num_return_sequences)
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def problems(self) -> list[str]:
        """Every problem with these settings, as sentences (empty when valid)."""
        out: list[str] = []
        if self.strategy not in STRATEGIES:
            out.append(
                f"unknown decoding strategy {self.strategy!r}; choose one of "
                f"{', '.join(STRATEGIES)}."
            )
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            out.append(f"max_new_tokens must be a whole number >= 0, got {self.max_new_tokens!r}.")
        if not _is_num(self.temperature) or self.temperature < 0:
            out.append(
                f"temperature must be >= 0 (0 means greedy), got {self.temperature!r}."
            )
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            out.append(f"top_k must be a whole number >= 1, got {self.top_k!r}.")
        if not _is_num(self.top_p) or not 0 < self.top_p <= 1:
            out.append(f"top_p must be in (0, 1] (1 keeps every token), got {self.top_p!r}.")
        if not _is_num(self.min_p) or not 0 <= self.min_p < 1:
            out.append(f"min_p must be in [0, 1) (0 keeps every token), got {self.min_p!r}.")
        if not _is_num(self.repetition_penalty) or self.repetition_penalty <= 0:
            out.append(
                "repetition_penalty must be > 0 (1 means no penalty), got "
                f"{self.repetition_penalty!r}."
            )
        if not _is_int(self.num_beams) or self.num_beams < 1:
            out.append(f"the number of beams must be a whole number >= 1, got {self.num_beams!r}.")
        if not _is_num(self.length_penalty):
            out.append(f"length_penalty must be a number, got {self.length_penalty!r}.")
        if not _is_int(self.n) or self.n < 1:
            out.append(f"n (outputs per prompt) must be a whole number >= 1, got {self.n!r}.")
        if any(not isinstance(s, str) or not s for s in self.stop):
            out.append("stop strings must be non-empty text.")
        if self.seed is not None and not _is_int(self.seed):
            out.append(f"seed must be a whole number, got {self.seed!r}.")
        if out:
            return out
        # combinations
        sampling_knobs = self._sampling_knobs()
        if self.strategy != "sample" and sampling_knobs:
            out.append(
                f"{', '.join(sampling_knobs)} only affect sampling, not {self.strategy} "
                "decoding; drop them or use --strategy sample."
            )
        if self.strategy == "greedy" and self.n > 1:
            out.append(
                "greedy decoding gives one output per prompt; use --strategy sample or beam "
                "for n > 1."
            )
        if self.strategy == "beam" and self.n > self.num_beams:
            out.append(
                f"n={self.n} best hypotheses need at least as many beams, but num_beams="
                f"{self.num_beams}; raise --beams."
            )
        return out

    def _sampling_knobs(self) -> list[str]:
        knobs = []
        if self.temperature != 1:
            knobs.append("temperature")
        if self.top_k is not None:
            knobs.append("top_k")
        if self.top_p != 1:
            knobs.append("top_p")
        if self.min_p != 0:
            knobs.append("min_p")
        return knobs


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


__all__ = ["STRATEGIES", "GenerationConfig"]

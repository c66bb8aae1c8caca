"""What the model ladder is made of: its configuration, the shared data, one rung's result.

Kept apart from :mod:`chainrule.evaluation.ladder` (which runs the ladder) so the report and the
rung trainers can use these types without importing the runner back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainrule.errors import ConfigError

if TYPE_CHECKING:  # only an annotation: `chainrule --help` reads the rung names without torch
    from chainrule.evaluation.perplexity import PerplexityReport

ALL_RUNGS = ("uniform", "unigram", "bigram", "trigram", "kn5", "ffnn", "rnn", "lstm", "gpt",
             "pretrained")
DEFAULT_RUNGS = ("unigram", "bigram", "trigram", "kn5", "ffnn", "lstm", "gpt")
VOCAB_SOURCES = ("train", "all")


@dataclass(frozen=True)
class LadderConfig:
    """What the ladder trains and how.

    Attributes:
        data: corpus files, one sentence per line (split into train/valid/test by lines).
        output: the report directory.
        rungs: which rungs to run, in order (see ``ALL_RUNGS``).
        test: optional separate test files (then ``data`` is train, ``valid`` its validation).
        valid: optional separate validation files.
        split: train/valid/test fractions of the lines of ``data`` when no test files given.
        tokenizer_kind: ``word`` (the lecture's tables), ``char``, ``bpe`` or ``bytebpe``.
        vocab_size: tokenizer vocabulary size (0: the kind's default).
        min_count: word tokenizer: words seen fewer times become ``<unk>``.
        vocab_from: ``train`` (count words in the training lines) or ``all`` (train + valid +
            test, Bengio et al.'s vocabulary).
        stream: train and test as one stream each instead of one sentence per line.
        lowercase: word tokenizer: lowercase the text.
        word_mode: word tokenizer: ``regex`` splits punctuation off, ``whitespace`` takes
            pre-tokenised text as it is.
        neural_iters: optimiser steps per neural rung (the most, with ``neural_seconds``).
        neural_seconds: wall-time budget per neural rung (0: none); see
            :func:`chainrule.evaluation.ladder_rungs.train_within`.
        neural_overrides: ``family -> {key: value}`` over the ladder's neural defaults.
        neural_checks: with a step budget, score the validation lines this many times during
            each neural rung and keep the best checkpoint (0: train straight through and keep
            the last); see :mod:`chainrule.evaluation.ladder_plan`.
        neural_cap_seconds: with a step budget and checks, a wall-time safety cap per neural
            rung (0: none): a rung that would pass it stops early and the report says so.
        neural_cap_shared: the cap is for all the neural rungs together (of each lane), each
            rung's share of what is left in proportion to its planned steps (the demo's
            5-minute budget).
        neural_threads: PyTorch threads for the neural rungs (0: as set); the demo uses 1, so
            its numbers do not depend on the machine (and a busy CPU runs small models
            fastest on one thread).
        neural_workers: processes that train the neural rungs at once, each running a lane
            of rungs (:mod:`chainrule.evaluation.ladder_lanes`); 1: one after the other in
            this process; 0: one per usable CPU for a step plan on one thread (the demo),
            else 1. The figures do not change with it.
        pairs: BLiMP-format JSONL files scored by every rung.
        sample_tokens: length of each rung's sample.
        seed: seeds tokenizer ties, neural training and the samples.
        max_train_lines: 0 (all) or keep only the first N training lines.
        pretrained: a model directory (e.g. an imported SmolLM2) scored as the ``pretrained``
            rung with its own tokenizer: it was not trained on this corpus, and only its
            per-word perplexity and bits per byte compare with the other rungs.
    """

    data: tuple[str, ...]
    output: str
    rungs: tuple[str, ...] = DEFAULT_RUNGS
    test: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    tokenizer_kind: str = "word"
    vocab_size: int = 0
    min_count: int = 2
    vocab_from: str = "train"
    stream: bool = False
    lowercase: bool = False
    word_mode: str = "regex"
    neural_iters: int = 1000
    neural_seconds: float = 0.0
    neural_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    neural_checks: int = 0
    neural_cap_seconds: float = 0.0
    neural_cap_shared: bool = False
    neural_threads: int = 0
    neural_workers: int = 1
    pairs: tuple[str, ...] = ()
    sample_tokens: int = 30
    seed: int = 1337
    max_train_lines: int = 0
    pretrained: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.data:
            problems.append("no corpus given; pass --data with one or more text files.")
        unknown = [r for r in self.rungs if r not in ALL_RUNGS]
        if unknown:
            problems.append(f"unknown rung(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(ALL_RUNGS)}.")
        if not self.rungs:
            problems.append("no rungs chosen; pass --rungs with at least one of "
                            f"{', '.join(ALL_RUNGS)}.")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or not (
            0 < sum(self.split) <= 1.0 + 1e-9 and self.split[0] > 0 and self.split[2] > 0
        ):
            problems.append(f"split {self.split} must be three non-negative fractions "
                            "(train, valid, test) with train and test above 0, summing to <= 1.")
        if self.vocab_from not in VOCAB_SOURCES:
            problems.append(f"vocab_from {self.vocab_from!r} must be one of "
                            f"{', '.join(VOCAB_SOURCES)}.")
        if "pretrained" in self.rungs and not self.pretrained:
            problems.append("the pretrained rung needs a model directory; pass --pretrained DIR "
                            "(e.g. one made by `chainrule pretrained get`).")
        if self.neural_iters < 1:
            problems.append(f"neural_iters must be at least 1, got {self.neural_iters}.")
        if min(self.neural_checks, self.neural_cap_seconds, self.neural_threads,
               self.neural_workers) < 0:
            problems.append("neural_checks, neural_cap_seconds, neural_threads and "
                            "neural_workers must be 0 or more.")
        if problems:
            raise ConfigError(problems)


@dataclass
class RungResult:
    """One row of the ladder table (test figures from :class:`PerplexityReport`)."""

    rung: str
    family: str = ""
    status: str = "ok"  # ok | skipped
    reason: str = ""
    test_ppl: float | None = None  # per token, <unk> targets included
    test_ppl_excl_oov: float | None = None  # per token, <unk> targets left out
    test_ppl_per_word: float | None = None  # per whitespace word (+ one end per sequence)
    test_bits_per_byte: float | None = None
    test_tokens: int | None = None  # scored targets
    test_oov: int | None = None  # scored targets that are <unk>
    valid_ppl: float | None = None
    train_seconds: float | None = None  # wall time of training (budget checks, saving included)
    steps: int | None = None  # optimiser steps (neural rungs)
    best_step: int | None = None  # the step of the checkpoint kept (step plans with checks)
    tokens_seen: int | None = None  # training tokens processed (n-grams: counted once each)
    parameters: int | None = None
    pairs_accuracy: float | None = None
    sample: str = ""
    model_dir: str = ""
    notes: str = ""  # warnings raised while training (e.g. fallback discounts)

    def set_test(self, report: PerplexityReport) -> None:
        """Copy the test figures of one perplexity report."""
        self.test_ppl = report.perplexity
        self.test_ppl_excl_oov = report.perplexity_excl_oov
        self.test_ppl_per_word = report.perplexity_per_word
        self.test_bits_per_byte = report.bits_per_byte
        self.test_tokens, self.test_oov = report.tokens, report.oov


@dataclass
class LadderData:
    """The shared inputs of every rung: one tokenizer, one boundary convention."""

    tokenizer: Any
    train_lines: list[str]
    valid_lines: list[str]
    test_lines: list[str]
    train_seqs: list[list[int]]  # each framed <s> ... </s> (one sequence when streaming)
    valid_seqs: list[list[int]]
    config: LadderConfig
    out_dir: Path
    test_tokens: int = 0  # scored test targets (tokens + one </s> per sequence)
    test_oov: int = 0  # of which <unk>
    neural_started: float | None = None  # perf_counter() when this process's first neural
    # rung started (a shared cap counts from it: ladder_rungs._cap_share)

    @property
    def unk_rate(self) -> float:
        return self.test_oov / self.test_tokens if self.test_tokens else 0.0

    def eval_lines(self, lines: list[str]) -> list[str]:
        """What the perplexity evaluator scores: the lines, or one line when streaming."""
        return [" ".join(lines)] if self.config.stream and lines else lines


__all__ = ["ALL_RUNGS", "DEFAULT_RUNGS", "VOCAB_SOURCES", "LadderConfig", "LadderData", "RungResult"]

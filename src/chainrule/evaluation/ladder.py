"""The model ladder: every generation of language model on one corpus, one vocabulary, one table.

``run_ladder`` splits a corpus (one sentence per line) into train / valid / test by whole lines,
trains ONE tokenizer on the training part, then trains each rung (unigram, bigram, trigram,
order-5 modified Kneser-Ney, feed-forward, LSTM, GPT) on the same ids and scores them the same
way, so the perplexities are comparable:

* every test line is one sentence ``<s> ... </s>``; each real token and each ``</s>`` is a
  scored token (``<s>`` is context only), as SRILM/KenLM count;
* perplexity = exp(- total log-probability / scored tokens) over the whole test set;
* text the vocabulary does not cover is ``<unk>``, which every rung scores as a token (the
  rate is in the report).

Rungs that cannot run (a family missing from this install, an error) are reported as skipped
with the reason; the others still run. The report directory gets ``report.md``,
``results.csv``, ``results.json``, ``ladder.png`` (with matplotlib), ``tokenizer.json`` and
``models/<rung>/`` (each a model directory usable with ``chainrule eval``/``generate``).
"""

from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError, ConfigError, DataError
from chainrule.fileio import atomic_write_text, write_json

ALL_RUNGS = ("uniform", "unigram", "bigram", "trigram", "kn5", "ffnn", "rnn", "lstm", "gpt")
DEFAULT_RUNGS = ("unigram", "bigram", "trigram", "kn5", "ffnn", "lstm", "gpt")


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
        min_count: word tokenizer: words seen fewer times in train become ``<unk>``.
        lowercase: word tokenizer: lowercase the text.
        neural_iters: optimiser steps per neural rung (the most, with ``neural_seconds``).
        neural_seconds: time budget per neural rung (0: none): a first chunk of steps
            measures the speed, the step total is planned from it, and the rest runs in
            chunks that stop when the budget is spent (at most ``neural_iters`` steps).
        neural_overrides: ``family -> {key: value}`` over the ladder's neural defaults.
        pairs: BLiMP-format JSONL files scored by every rung.
        sample_tokens: length of each rung's sample.
        seed: seeds tokenizer ties, neural training and the samples.
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
    lowercase: bool = False
    word_mode: str = "regex"  # word tokenizer: "regex" splits punctuation, "whitespace" doesn't
    neural_iters: int = 1000
    neural_seconds: float = 0.0
    neural_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: tuple[str, ...] = ()
    sample_tokens: int = 30
    seed: int = 1337
    max_train_lines: int = 0  # 0: all; otherwise keep the first N training lines (demo budget)

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
        if self.neural_iters < 1:
            problems.append(f"neural_iters must be at least 1, got {self.neural_iters}.")
        if problems:
            raise ConfigError(problems)


@dataclass
class RungResult:
    """One row of the ladder table."""

    rung: str
    family: str = ""
    status: str = "ok"  # ok | skipped
    reason: str = ""
    test_ppl: float | None = None
    valid_ppl: float | None = None
    bits_per_token: float | None = None
    train_seconds: float | None = None
    steps: int | None = None  # optimiser steps (neural rungs)
    parameters: int | None = None
    pairs_accuracy: float | None = None
    sample: str = ""
    model_dir: str = ""
    notes: str = ""  # warnings raised while training (e.g. fallback discounts)


@dataclass
class LadderData:
    """The shared inputs of every rung: one tokenizer, one boundary convention."""

    tokenizer: Any
    train_lines: list[str]
    valid_lines: list[str]
    test_lines: list[str]
    train_seqs: list[list[int]]  # each framed <s> ... </s>
    valid_seqs: list[list[int]]
    test_seqs: list[list[int]]
    config: LadderConfig
    out_dir: Path

    @property
    def unk_rate(self) -> float:
        unk = self.tokenizer.unk_id
        n = sum(len(s) - 1 for s in self.test_seqs)
        if unk is None or not n:
            return 0.0
        return sum(s.count(unk) for s in self.test_seqs) / n


def _read_lines(paths: Sequence[str]) -> list[str]:
    from chainrule.data import read_text

    lines = [ln.strip() for p in paths for ln in read_text(p).splitlines()]
    return [ln for ln in lines if ln]


def split_lines(lines: list[str], fractions: Sequence[float]) -> tuple[list[str], ...]:
    """Contiguous split by whole lines: ``[0, a)`` train, ``[a, b)`` valid, ``[b, c)`` test."""
    n = len(lines)
    a = int(n * fractions[0])
    b = int(n * (fractions[0] + fractions[1]))
    c = min(n, round(n * sum(fractions)))
    return lines[:a], lines[a:b], lines[b:c]


def prepare(config: LadderConfig) -> LadderData:
    """Read and split the corpus, train the one tokenizer, frame every line as ``<s> .. </s>``."""
    lines = _read_lines(config.data)
    if config.test:
        train, test = lines, _read_lines(config.test)
        valid = _read_lines(config.valid) if config.valid else []
    else:
        train, valid, test = split_lines(lines, config.split)
    if config.max_train_lines:
        train = train[: config.max_train_lines]
    if len(train) < 2 or not test:
        raise DataError(
            f"the corpus {', '.join(config.data)} has too few non-empty lines ({len(lines)}) to "
            "split into train and test; pass a larger corpus (one sentence per line)."
        )
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_ladder_tokenizer(config, train)
    tok.save(out / "tokenizer.json")

    def frame(ls: list[str]) -> list[list[int]]:
        return [[tok.bos_id, *tok.encode(ln), tok.eos_id] for ln in ls]

    return LadderData(tok, train, valid, test, frame(train), frame(valid), frame(test), config,
                      out)


def train_ladder_tokenizer(config: LadderConfig, train_lines: list[str]):
    """The ladder's one tokenizer, trained on the training lines only."""
    from chainrule.evaluation.ladder_rungs import train_tokenizer_for

    return train_tokenizer_for(config.tokenizer_kind, train_lines, vocab_size=config.vocab_size,
                               min_count=config.min_count, lowercase=config.lowercase,
                               word_mode=config.word_mode)


def perplexity(model, seqs: list[list[int]]) -> tuple[float, float]:
    """(perplexity, bits per token) of framed sequences, every target counted once."""
    from chainrule.evaluation.textscore import score_sequences

    scores = score_sequences(model, seqs)
    n = sum(len(s) for s in scores)
    if not n:
        return float("nan"), float("nan")
    nll = -sum(float(s.sum()) for s in scores) / n
    return math.exp(nll), nll / math.log(2)


def run_ladder(
    config: LadderConfig, *, log: Callable[[str], None] = lambda s: None
) -> tuple[LadderData, list[RungResult]]:
    """Train and evaluate every rung, write the report, return the data and the rows."""
    from chainrule.evaluation.ladder_rungs import TRAINERS, RungSkipped

    data = prepare(config)
    log(f"corpus: {len(data.train_lines):,} train / {len(data.valid_lines):,} valid / "
        f"{len(data.test_lines):,} test lines; {config.tokenizer_kind} vocabulary of "
        f"{data.tokenizer.vocab_size:,} tokens; test <unk> rate {100 * data.unk_rate:.2f}%")
    pairs = None
    if config.pairs:
        from chainrule.evaluation.pairs import read_pairs

        pairs = read_pairs(config.pairs)
    results = []
    for rung in config.rungs:
        res = RungResult(rung)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model, directory, info = TRAINERS[rung](data)
            res.notes = "; ".join(dict.fromkeys(str(w.message) for w in caught))
        except RungSkipped as e:
            res.status, res.reason = "skipped", str(e)
            log(f"  {rung:<8} skipped: {e}")
            results.append(res)
            continue
        except ChainruleError as e:
            res.status, res.reason = "skipped", f"failed: {e}"
            log(f"  {rung:<8} failed: {e}")
            results.append(res)
            continue
        res.train_seconds = time.perf_counter() - t0
        res.family = model.family
        res.steps = info.get("steps")
        res.parameters = int(model.num_parameters())
        _evaluate(model, directory, data, res, pairs)
        log(f"  {rung:<8} test perplexity {res.test_ppl:9.2f}   ({res.train_seconds:.1f} s, "
            f"{res.parameters:,} parameters)")
        results.append(res)
    write_report(data, results)
    return data, results


def _evaluate(model, directory: Path | None, data: LadderData, res: RungResult, pairs) -> None:
    if hasattr(model, "eval"):
        model.eval()
    res.test_ppl, res.bits_per_token = perplexity(model, data.test_seqs)
    if data.valid_seqs:
        res.valid_ppl = perplexity(model, data.valid_seqs)[0]
    res.sample = sample_text(model, data.tokenizer, data.config.sample_tokens, data.config.seed)
    if directory is None:
        directory = data.out_dir / "models" / res.rung
        model.save(directory)
        data.tokenizer.save(directory / "tokenizer.json")
    res.model_dir = str(directory)
    if pairs is not None:
        from chainrule.evaluation.pairs import score_pairs

        scores = score_pairs(model, data.tokenizer, pairs, allow_unk=True)
        res.pairs_accuracy = sum(scores.correct) / len(scores.correct)


def sample_text(model, tokenizer, max_tokens: int, seed: int) -> str:
    """One ancestral sample from ``<s>`` (temperature 1), as text."""
    try:
        from chainrule.decoding import GenerationConfig, generate
    except ImportError:
        return _sample_fallback(model, tokenizer, max_tokens, seed)
    text = ""
    for attempt in range(5):  # an immediate </s> makes an empty sample: draw again
        cfg = GenerationConfig(strategy="sample", max_new_tokens=max_tokens, temperature=1.0,
                               seed=seed + attempt)
        with warnings.catch_warnings():
            # a unigram's context is empty, so even <s> is "truncated": expected, not news
            warnings.simplefilter("ignore")
            [[out]] = generate(model, [[]], cfg, tokenizer=tokenizer)
        text = " ".join((out.text or "").split())
        if text:
            break
    return text


def _sample_fallback(model, tokenizer, max_tokens: int, seed: int) -> str:
    import torch

    g = torch.Generator().manual_seed(seed)
    lp, state = model.start(torch.tensor([[model.bos_id]]))
    ids = []
    for _ in range(max_tokens):
        t = int(torch.multinomial(lp[0].exp(), 1, generator=g))
        if t == model.eos_id:
            break
        ids.append(t)
        lp, state = model.step(state, torch.tensor([t]))
    return " ".join(tokenizer.decode(ids).split())


# -- the report ------------------------------------------------------------------------------
CSV_COLUMNS = ["rung", "family", "status", "test_ppl", "valid_ppl", "bits_per_token",
               "train_seconds", "steps", "parameters", "pairs_accuracy", "sample", "reason",
               "notes"]


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table_rows(results: Sequence[RungResult]) -> list[dict[str, str]]:
    """The printed/Markdown table: one row per rung."""
    rows = []
    for r in results:
        rows.append({
            "model": r.rung,
            "test ppl": _fmt(r.test_ppl),
            "valid ppl": _fmt(r.valid_ppl),
            "train s": _fmt(r.train_seconds),
            "steps": _fmt(r.steps),
            "params": _fmt(r.parameters),
            **({"pairs %": _fmt(None if r.pairs_accuracy is None else 100 * r.pairs_accuracy)}
               if any(x.pairs_accuracy is not None for x in results) else {}),
            "status": r.status if r.status == "ok" else f"skipped: {r.reason}",
        })
    return rows


def _markdown_table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(r[c].replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(out)


def write_report(data: LadderData, results: Sequence[RungResult]) -> Path:
    """Write report.md, results.csv, results.json and (with matplotlib) ladder.png."""
    out, cfg = data.out_dir, data.config
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({k: v for k, v in asdict(r).items() if k in CSV_COLUMNS})
    atomic_write_text(out / "results.csv", buf.getvalue())
    write_json(out / "results.json", {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "vocab_size": data.tokenizer.vocab_size,
        "test_unk_rate": data.unk_rate,
        "results": [asdict(r) for r in results],
    })
    ok = [r for r in results if r.status == "ok" and r.test_ppl is not None]
    plot_note = ""
    if ok:
        from chainrule.evaluation.plots import have_matplotlib, plot_perplexity_ladder

        if have_matplotlib():
            plot_perplexity_ladder([r.rung for r in ok], [r.test_ppl for r in ok],
                                   out / "ladder.png", unit="per token")
            plot_note = "![test perplexity per model](ladder.png)\n"
        else:
            plot_note = ("(no plot: matplotlib is missing; install it with "
                         "`pip install 'chainrule[plot]'`)\n")
    n_test_tokens = sum(len(s) - 1 for s in data.test_seqs)
    md = [
        "# The model ladder",
        "",
        f"Corpus: {', '.join(cfg.data)} — {len(data.train_lines):,} training, "
        f"{len(data.valid_lines):,} validation and {len(data.test_lines):,} test lines"
        + (" (separate test files)" if cfg.test else
           f" (contiguous split {cfg.split[0]:g}/{cfg.split[1]:g}/{cfg.split[2]:g} by lines)")
        + ".",
        f"One {cfg.tokenizer_kind} tokenizer for every model: {data.tokenizer.vocab_size:,} "
        f"tokens (trained on the training lines"
        + (f", words seen fewer than {cfg.min_count} times are `<unk>`"
           if cfg.tokenizer_kind == "word" else "") + ").",
        (f"Test perplexity is per token over {n_test_tokens:,} scored tokens: every line is one "
        "sentence `<s> … </s>`, `</s>` counts as a token, `<s>` does not; "
        f"`<unk>` is {100 * data.unk_rate:.2f}% of the test tokens and is scored like any token."),
        "",
        _markdown_table(table_rows(results)),
        "",
        plot_note,
        "## Samples (temperature 1, from `<s>`)",
        "",
    ]
    for r in results:
        if r.status == "ok":
            md += [f"**{r.rung}**: {r.sample}", ""]
    notes = [r for r in results if r.notes]
    if notes:
        md += ["## Notes from training", ""]
        md += [f"- **{r.rung}**: {r.notes}" for r in notes]
        md += [""]
    md += [("Each model is saved under `models/<rung>/`; score your own text with, e.g., "
           "`chainrule eval surprisal models/kn5 --data FILE -o out.csv`."), ""]
    atomic_write_text(out / "report.md", "\n".join(md))
    return out / "report.md"


__all__ = [
    "ALL_RUNGS",
    "DEFAULT_RUNGS",
    "LadderConfig",
    "LadderData",
    "RungResult",
    "perplexity",
    "prepare",
    "run_ladder",
    "sample_text",
    "split_lines",
    "table_rows",
    "write_report",
]

"""The model ladder: every generation of language model on one corpus, one vocabulary, one table.

``run_ladder`` splits a corpus (one sentence per line) into train / valid / test by whole lines,
trains ONE tokenizer, then trains each rung (unigram, bigram, trigram, order-5 modified
Kneser-Ney, feed-forward, LSTM, GPT) on the same ids and scores every rung with the one
perplexity evaluator (:func:`chainrule.evaluation.perplexity.perplexity`), so the figures
compare: per token with and without ``<unk>`` targets, per word, bits per byte, the OOV count.

Two boundary conventions (``LadderConfig.stream``):

* sentences (default): every line is one sentence ``<s> ... </s>``; each token and each
  ``</s>`` is a scored target, ``<s>`` is context only (SRILM/KenLM's count);
* stream (Bengio et al. 2003): the training text and the test text are each one sequence,
  ``<s> line1 line2 ... </s>`` (lines joined by a space), so sentence ends are not tokens and
  a model's context runs across them.

``vocab_from="all"`` builds the vocabulary (and its ``<unk>`` threshold) from the counts of
train + valid + test, as Bengio et al. did; the default counts the training lines only.

A rung that fails (a ``ChainruleError`` while training) is reported as skipped with the
reason; the others still run. The report directory gets ``report.md``,
``results.csv``, ``results.json``, ``ladder.png`` (with matplotlib), ``tokenizer.json`` and
``models/<rung>/`` (each a model directory usable with ``chainrule eval``/``generate``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from chainrule.errors import ChainruleError, DataError
from chainrule.evaluation.ladder_config import (
    ALL_RUNGS,
    DEFAULT_RUNGS,
    VOCAB_SOURCES,
    LadderConfig,
    LadderData,
    RungResult,
)
from chainrule.evaluation.perplexity import perplexity


def _read_lines(paths: Sequence[str]) -> list[str]:
    from chainrule.data import iter_lines

    return [ln.strip() for ln in iter_lines(paths) if ln.strip()]


def split_lines(lines: list[str], fractions: Sequence[float]) -> tuple[list[str], ...]:
    """Contiguous split by whole lines: ``[0, a)`` train, ``[a, b)`` valid, ``[b, c)`` test.

    Example: 10 lines, ``(0.8, 0.1, 0.1)`` -> lines 0-7, 8, 9.
    """
    n = len(lines)
    a = int(n * fractions[0])
    b = int(n * (fractions[0] + fractions[1]))
    c = min(n, round(n * sum(fractions)))
    return lines[:a], lines[a:b], lines[b:c]


def prepare(config: LadderConfig) -> LadderData:
    """Read and split the corpus, train the one tokenizer, frame the training text."""
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
    from chainrule.evaluation.ladder_rungs import train_tokenizer_for

    counted = train + valid + test if config.vocab_from == "all" else train
    tok = train_tokenizer_for(config.tokenizer_kind, counted, vocab_size=config.vocab_size,
                              min_count=config.min_count, lowercase=config.lowercase,
                              word_mode=config.word_mode)
    tok.save(out / "tokenizer.json")
    data = LadderData(tok, train, valid, test, [], [], config, out)
    data.train_seqs, data.valid_seqs = frame_lines(data, train), frame_lines(data, valid)
    scored = [tok.encode(ln) for ln in data.eval_lines(test)]
    data.test_tokens = sum(len(s) + 1 for s in scored)
    data.test_oov = sum(s.count(tok.unk_id) for s in scored) if tok.unk_id is not None else 0
    return data


def frame_lines(data: LadderData, lines: list[str]) -> list[list[int]]:
    """``[<s>, ids..., </s>]`` per scored line (:meth:`LadderData.eval_lines`)."""
    tok = data.tokenizer
    return [[tok.bos_id, *tok.encode(ln), tok.eos_id] for ln in data.eval_lines(lines)]


def run_ladder(
    config: LadderConfig, *, log: Callable[[str], None] = lambda s: None
) -> tuple[LadderData, list[RungResult]]:
    """Train and evaluate every rung, write the report, return the data and the rows."""
    import torch

    from chainrule.evaluation.ladder_report import write_report

    data = prepare(config)
    log(f"corpus: {len(data.train_lines):,} train / {len(data.valid_lines):,} valid / "
        f"{len(data.test_lines):,} test lines; {config.tokenizer_kind} vocabulary of "
        f"{data.tokenizer.vocab_size:,} tokens; test <unk> rate {100 * data.unk_rate:.2f}%")
    pairs = None
    if config.pairs:
        from chainrule.evaluation.pairs import read_pairs

        pairs = read_pairs(config.pairs)
    from chainrule.evaluation.ladder_lanes import run_neural
    from chainrule.evaluation.ladder_rungs import NEURAL_DEFAULTS

    threads = torch.get_num_threads()  # a timed neural rung may pick one thread; restored below

    def run_one(rung: str, data: LadderData, pairs, log: Callable[[str], None]) -> RungResult:
        try:
            return _run_rung(rung, data, pairs, log)
        finally:
            torch.set_num_threads(threads)

    # the n-grams first, here; then the neural rungs, in parallel lanes where planned
    neural = [r for r in config.rungs if r in NEURAL_DEFAULTS]
    done = {r: run_one(r, data, pairs, log) for r in config.rungs if r not in neural}
    done.update(run_neural(data, neural, pairs, log, run_one, _run_rung))
    results = [done[r] for r in config.rungs]
    write_report(data, results)
    return data, results


def _run_rung(rung: str, data: LadderData, pairs, log: Callable[[str], None]) -> RungResult:
    """Train, score, sample and save one rung (a failure becomes a skipped row)."""
    from chainrule.evaluation.ladder_rungs import TRAINERS

    res = RungResult(rung)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, directory, info = TRAINERS[rung](data)
        res.notes = "; ".join(dict.fromkeys(str(w.message) for w in caught))
    except ChainruleError as e:
        res.status, res.reason = "skipped", f"failed: {e}"
        log(f"  {rung:<8} {res.reason}")
        return res
    res.train_seconds = time.perf_counter() - t0
    res.family = model.family
    res.steps, res.tokens_seen = info.get("steps"), info.get("tokens_seen")
    res.best_step = info.get("best_step")
    if info.get("note"):  # e.g. a step plan cut short by its time cap
        res.notes = "; ".join(n for n in (res.notes, info["note"]) if n)
    res.parameters = int(model.num_parameters())
    if info.get("pretrained"):
        res.notes = ("pretrained elsewhere, not on this corpus; its own tokenizer, so compare "
                     "per word and bits per byte, not per token")
    _evaluate(model, directory, data, res, pairs, info.get("tokenizer") or data.tokenizer)
    log(f"  {rung:<8} test perplexity {res.test_ppl:9.2f}   ({res.train_seconds:.1f} s"
        + (f", {res.steps:,} steps" if res.steps else "")
        + (f", best at {res.best_step:,}" if res.best_step and res.best_step != res.steps
           else "")
        + (f", {res.tokens_seen:,} tokens seen" if res.tokens_seen else "")
        + f", {res.parameters:,} parameters)")
    return res


def _evaluate(model, directory: Path | None, data: LadderData, res: RungResult, pairs,
              tok) -> None:
    if hasattr(model, "eval"):
        model.eval()
    res.set_test(perplexity(model, tok, data.eval_lines(data.test_lines), name=res.rung))
    if data.valid_lines:
        res.valid_ppl = perplexity(model, tok, data.eval_lines(data.valid_lines)).perplexity
    res.sample = sample_text(model, tok, data.config.sample_tokens, data.config.seed)
    if directory is None:
        directory = data.out_dir / "models" / res.rung
        model.save(directory)
        tok.save(directory / "tokenizer.json")
    res.model_dir = str(directory)
    if pairs is not None:
        from chainrule.evaluation.pairs import score_pairs

        scores = score_pairs(model, tok, pairs, allow_unk=True)
        res.pairs_accuracy = sum(scores.correct) / len(scores.correct)


def sample_text(model, tokenizer, max_tokens: int, seed: int) -> str:
    """One ancestral sample from ``<s>`` (temperature 1), as text, through the decoding path."""
    from chainrule.decoding import GenerationConfig, generate

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


__all__ = [
    "ALL_RUNGS",
    "DEFAULT_RUNGS",
    "VOCAB_SOURCES",
    "LadderConfig",
    "LadderData",
    "RungResult",
    "frame_lines",
    "prepare",
    "run_ladder",
    "sample_text",
    "split_lines",
]

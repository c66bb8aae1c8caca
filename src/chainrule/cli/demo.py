"""CLI: ``chainrule ladder`` (the model ladder on any corpus) and ``chainrule demo`` (the ladder
on the bundled Tiny Shakespeare, in a few minutes on a laptop CPU)."""

from __future__ import annotations

import argparse
import textwrap
import time

from chainrule.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser(
        "ladder",
        help="train every rung (unigram ... GPT) on one corpus and write a comparison report",
        description="Train the chosen rungs on one corpus with one vocabulary and one boundary "
        "convention, then write REPORT_DIR/report.md, results.csv and ladder.png: test "
        "perplexity, a sample, minimal-pair accuracy, training time and parameters per model.",
    )
    p.add_argument("--data", nargs="+", required=True, metavar="CORPUS",
                   help="text files, one sentence per line")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR")
    _ladder_options(p)
    p.set_defaults(func=run_ladder_cmd)

    d = sub.add_parser(
        "demo",
        help="the main job: a small model ladder on the bundled Tiny Shakespeare",
        description="Train tokenizers and a small model ladder (unigram to GPT) on the bundled "
        "Tiny Shakespeare, print what they learned and their test perplexities, and write a "
        "report. Takes a few minutes on a laptop CPU.",
    )
    d.add_argument("-o", "--output", default="chainrule-demo", metavar="DIR",
                   help="report directory (default: ./chainrule-demo)")
    d.add_argument("--rungs", default=None,
                   help="comma-separated rungs (default: unigram,bigram,trigram,kn5,ffnn,lstm,gpt)")
    d.add_argument("--budget", default=None, metavar="STEPS|SECONDSs",
                   help="per neural rung: training steps (3000) or seconds (60s: the figures "
                        "then depend on the machine's speed); default: the demo's step plan "
                        "(the same numbers on every run; about 4 minutes on 2 cores)")
    d.add_argument("--cap", type=float, default=None, metavar="SECONDS",
                   help="with a step plan, the wall-time safety cap for the neural rungs "
                        "together (for each process of --workers), shared in proportion to "
                        "their planned steps: a rung that would pass its share stops early "
                        "and the report says so (default: 270; 0: none)")
    d.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes that train the neural rungs at once, one thread each "
                        "(default: 0, one per usable CPU; 1: one after the other); the "
                        "figures are the same either way")
    d.add_argument("--seed", type=int, default=1337,
                   help="seeds the neural rungs and the samples (default: %(default)s)")
    d.add_argument("--pairs", nargs="*", default=(), metavar="BLIMP.jsonl",
                   help="also score BLiMP-format minimal pairs with every rung")
    d.add_argument("--json", action="store_true", help="print one JSON object at the end")
    d.set_defaults(func=run_demo_cmd)


def _ladder_options(p: argparse.ArgumentParser) -> None:
    from chainrule.evaluation.ladder_config import ALL_RUNGS, DEFAULT_RUNGS

    p.add_argument("--rungs", default=",".join(DEFAULT_RUNGS),
                   help=f"comma-separated, from {','.join(ALL_RUNGS)} (default: %(default)s)")
    p.add_argument("--budget", default="1000", metavar="STEPS|SECONDSs",
                   help="per neural rung: training steps (1000) or a time budget in seconds "
                        "(60s: a short probe measures the speed; at most 100,000 steps) "
                        "(default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="FAMILY.KEY=VALUE",
                   help="override a neural setting, e.g. gpt.n_layer=4 or lstm.max_iters=3000")
    p.add_argument("--checks", type=int, default=0, metavar="N",
                   help="with a step budget: score the validation lines N times during each "
                        "neural rung and keep the best checkpoint (default: 0, keep the last)")
    p.add_argument("--cap", type=float, default=0.0, metavar="SECONDS",
                   help="with --checks: a wall-time safety cap per neural rung; a rung that "
                        "would pass it stops early and the report says so (default: none)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes that train the neural rungs at once, one thread each "
                        "(default: 1, one after the other in this process)")
    p.add_argument("--pretrained", default="", metavar="MODEL_DIR",
                   help="a model trained elsewhere (e.g. `chainrule pretrained get`) scored as "
                        "the 'pretrained' rung, added to --rungs; compare it per word and per "
                        "byte")
    p.add_argument("--valid", nargs="+", default=(), metavar="FILE",
                   help="separate validation files (with --test)")
    p.add_argument("--test", nargs="+", default=(), metavar="FILE",
                   help="separate test files; then --data is all training text")
    p.add_argument("--split", default="0.8,0.1,0.1", metavar="TRAIN,VALID,TEST",
                   help="fractions of the lines of --data (default: %(default)s)")
    p.add_argument("--tokenizer", default="word", choices=["word", "char", "bpe", "bytebpe"],
                   help="the one tokenizer kind every rung uses (default: %(default)s)")
    p.add_argument("--vocab-size", type=int, default=0, metavar="N")
    p.add_argument("--min-count", type=int, default=2, metavar="K",
                   help="word tokenizer: words seen fewer than K times are <unk> (default: 2)")
    p.add_argument("--vocab-from", default="train", metavar="train|all",
                   help="count words for the vocabulary (and --min-count) in the training lines "
                        "or in train+valid+test, as Bengio et al. did (default: %(default)s)")
    p.add_argument("--stream", action="store_true",
                   help="train and test as one stream each (<s> all lines </s>) instead of one "
                        "sentence per line (Bengio et al.'s protocol)")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--word-mode", choices=["regex", "whitespace"], default="regex",
                   help="word tokenizer: split punctuation off (regex) or take pre-tokenised "
                        "text as is (whitespace)")
    p.add_argument("--pairs", nargs="+", default=(), metavar="BLIMP.jsonl",
                   help="BLiMP-format minimal pairs scored by every rung")
    p.add_argument("--suites", nargs="+", default=(), metavar="SUITE.json",
                   help="SyntaxGym suites scored by every rung (a psycholinguistics section)")
    p.add_argument("--reading-times", metavar="DIR|TABLE",
                   help="reading times (e.g. Natural Stories) regressed on every rung's "
                        "surprisal (ΔLL per word; with --freq-corpus for the frequency baseline)")
    p.add_argument("--freq-corpus", metavar="FILE",
                   help="corpus for the reading-time baseline's unigram frequencies")
    p.add_argument("--sample-tokens", type=int, default=30, metavar="N")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def parse_sets(items: list[str]) -> dict[str, dict]:
    """``["gpt.n_layer=4"]`` -> ``{"gpt": {"n_layer": 4}}`` (typed by the training config)."""
    from chainrule.evaluation.ladder_rungs import NEURAL_DEFAULTS

    grouped: dict[str, list[str]] = {}
    problems = []
    for item in items:
        fam, dot, rest = item.partition(".")
        if not dot or fam not in NEURAL_DEFAULTS or "=" not in rest:
            problems.append(f"--set {item!r} must look like FAMILY.KEY=VALUE with FAMILY one of "
                            f"{', '.join(NEURAL_DEFAULTS)}")
            continue
        grouped.setdefault(fam, []).append(rest)
    if problems:
        raise ConfigError(problems)
    from chainrule.training.config import parse_overrides

    return {fam: parse_overrides(kv) for fam, kv in grouped.items()}


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise ConfigError(f"--split {text!r} must be three comma-separated fractions, "
                          "e.g. 0.8,0.1,0.1.")
    return parts  # type: ignore[return-value]


def parse_budget(text: str, max_steps: int = 100_000) -> tuple[int, float]:
    """``"300"`` -> (300 steps, no time limit); ``"45s"`` -> (max_steps, 45 seconds)."""
    t = text.strip().lower()
    try:
        if t.endswith("s"):
            seconds = float(t[:-1])
            if seconds > 0:
                return max_steps, seconds
        else:
            steps = int(t)
            if steps > 0:
                return steps, 0.0
    except ValueError:
        pass
    raise ConfigError(f"--budget {text!r} must be a positive number of steps (300) or of "
                      "seconds with an s (45s).")


def _rungs(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def run_ladder_cmd(args: argparse.Namespace) -> int:
    from chainrule.evaluation.ladder import LadderConfig

    steps, seconds = parse_budget(args.budget)
    rungs = _rungs(args.rungs)
    if args.pretrained and "pretrained" not in rungs:
        rungs += ("pretrained",)
    cfg = LadderConfig(
        data=tuple(args.data), output=args.output, rungs=rungs, pretrained=args.pretrained,
        test=tuple(args.test), valid=tuple(args.valid), split=_split(args.split),
        tokenizer_kind=args.tokenizer, vocab_size=args.vocab_size, min_count=args.min_count,
        vocab_from=args.vocab_from, stream=args.stream, lowercase=args.lowercase,
        word_mode=args.word_mode, neural_iters=steps, neural_seconds=seconds,
        neural_overrides=parse_sets(args.set), pairs=tuple(args.pairs),
        sample_tokens=args.sample_tokens, seed=args.seed, neural_checks=args.checks,
        neural_cap_seconds=args.cap, neural_workers=args.workers,
    )
    rc = _run_and_print(cfg, args.json)
    if rc == 0 and (args.suites or args.reading_times):
        from chainrule.evaluation.ladder_psych import add_psych_section

        log = (lambda s: None) if args.json else print
        path = add_psych_section(args.output, suites=args.suites,
                                 reading_times=args.reading_times,
                                 freq_corpus=args.freq_corpus, log=log)
        log(f"Psycholinguistics section added to {path}")
    return rc


def _run_and_print(cfg, as_json: bool, header=None) -> int:
    from dataclasses import asdict

    from chainrule.cli._output import print_json, print_table
    from chainrule.evaluation.ladder import run_ladder
    from chainrule.evaluation.ladder_report import order_text, protocol_text, table_rows, verdict
    from chainrule.fileio import hold_directory

    t0 = time.perf_counter()
    log = (lambda s: None) if as_json else (lambda s: print(s, flush=True))
    with hold_directory(cfg.output):  # one ladder run per output directory
        data, results = run_ladder(cfg, log=log)
    wall = time.perf_counter() - t0
    report = data.out_dir / "report.md"
    if as_json:
        out = {"report": str(report), "wall_seconds": wall,
               "vocab_size": data.tokenizer.vocab_size, "results": [asdict(r) for r in results]}
        if header:
            out["tokenizers"] = header
        print_json(out)
        return 0
    print()
    print_table(table_rows(results))
    print()
    print(textwrap.fill(protocol_text(data), width=100))
    said = " ".join(x for x in (order_text(results), verdict(data, results)) if x)
    if said:
        print()
        print(textwrap.fill(said, width=100))
    print()
    print("Samples (temperature 1):")
    for r in results:
        if r.status == "ok":
            print(f"  {r.rung:<8} {r.sample}")
    print()
    print(f"Report: {report}  (with results.csv and ladder.png) — {wall:.0f} s in all.")
    return 0


def _training_text(cfg) -> str:
    """How the demo's neural rungs train, in a few words."""
    if cfg.neural_seconds:
        return f"{cfg.neural_seconds:g} s of training per neural model"
    neural = [r for r in cfg.rungs if r in cfg.neural_overrides]
    steps = ", ".join(f"{r} {cfg.neural_overrides[r]['max_iters']:,}" for r in neural)
    cap = (f", at most {cfg.neural_cap_seconds:g} s in all" if cfg.neural_cap_seconds
           else "")
    return (f"training steps {steps} on one thread, seed {cfg.seed}, the best of "
            f"{cfg.neural_checks} validation checks kept{cap}") if neural else "n-grams only"


def run_demo_cmd(args: argparse.Namespace) -> int:
    from chainrule.evaluation.demo import demo_config, show_tokenizers

    t0 = time.perf_counter()
    header = show_tokenizers(quiet=args.json)
    budget = parse_budget(args.budget, max_steps=20_000) if args.budget else None
    extra = {} if args.cap is None else {"cap": args.cap}
    cfg = demo_config(args.output, rungs=_rungs(args.rungs) if args.rungs else None,
                      budget=budget, pairs=tuple(args.pairs), seed=args.seed,
                      workers=args.workers, **extra)
    if not args.json:
        print(f"\nThe model ladder on Tiny Shakespeare (word level, one vocabulary for all; "
              f"{_training_text(cfg)}):", flush=True)
    rc = _run_and_print(cfg, args.json, header=header)
    if not args.json:
        print(f"Demo finished in {time.perf_counter() - t0:.0f} s.")
    return rc

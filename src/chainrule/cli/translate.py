"""CLI: ``chainrule translate MODEL_DIR --source FILE|-`` -- one translation per source line."""

from __future__ import annotations

import argparse
import sys


def add_translation_options(p: argparse.ArgumentParser, strategy: str = "beam") -> None:
    """Decoding options shared by ``translate`` and ``eval bleu``."""
    p.add_argument("--strategy", default=strategy, choices=["greedy", "sample", "beam"],
                   help=f"decoding strategy (default: {strategy})")
    p.add_argument("--beams", type=int, default=5, metavar="B",
                   help="beams for --strategy beam (default 5; 1 beam is greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0, metavar="A",
                   help="beam score = log-prob / length**A (default 1)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="--strategy sample: temperature")
    p.add_argument("--top-k", type=int, metavar="K", help="--strategy sample: top-k")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P",
                   help="--strategy sample: nucleus mass")
    p.add_argument("--seed", type=int, help="--strategy sample: random seed")
    p.add_argument("--max-tokens", type=int, default=0, metavar="N",
                   help="most tokens per translation (default: the model's max_len)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="sentences decoded together (default 64)")
    p.add_argument("--template", metavar="TEXT",
                   help="decoder-only models: the prompt, with {source} where the sentence goes "
                        "(\\n is a line break), e.g. 'German: {source}\\nEnglish:'")
    p.add_argument("--no-truncate", action="store_true",
                   help="refuse a source longer than the model's maximum instead of cutting it")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def run_translation(args: argparse.Namespace, sentences: list[str]):
    """(translator, completions) for the decoding options in ``args``."""
    from chainrule.evaluation.translation import Translator, translate
    from chainrule.training.build import resolve_device

    template = args.template.replace("\\n", "\n") if args.template else None
    tr = Translator.load(args.model_dir, device=resolve_device(args.device), template=template)
    sampling = {}
    if args.strategy == "sample":
        sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    outs = translate(tr, sentences, strategy=args.strategy, beams=args.beams,
                     max_new_tokens=args.max_tokens, length_penalty=args.length_penalty,
                     batch_size=args.batch_size, truncate=not args.no_truncate,
                     seed=args.seed, **sampling)
    return tr, outs


def read_sentences(path: str) -> list[str]:
    """Lines of ``path`` (``-``: standard input)."""
    from chainrule.data.parallel import read_lines
    from chainrule.errors import DataError

    lines = sys.stdin.read().split("\n") if path == "-" else read_lines(path)
    if path == "-" and lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{'standard input' if path == '-' else repr(path)} holds no sentences; "
                        "give one sentence per line.")
    return [line.removesuffix("\r") for line in lines]


def register(sub) -> None:
    p = sub.add_parser(
        "translate",
        help="translate sentences with an encoder-decoder (or a prompted decoder-only model)",
        description="Translate each line of --source (default: standard input) with MODEL_DIR "
        "by beam search (default), greedy decoding or sampling; print one translation per line.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--source", default="-", metavar="FILE",
                   help="sentences to translate, one per line ('-': standard input)")
    add_translation_options(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per line (source, translation, log-probability)")
    p.add_argument("--attention", metavar="OUT.png",
                   help="draw the source x target attention of the first sentence (per layer "
                        "and head for a transformer)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.evaluation.translation import (
        attention_maps,
        hypothesis_text,
        plot_source_attention,
    )

    sentences = read_sentences(args.source)
    tr, outs = run_translation(args, sentences)
    for s, c in zip(sentences, outs):
        text = hypothesis_text(c)
        if args.json:
            print_json({"source": s, "translation": text, "logprob": c.logprob,
                        "tokens": len(c.token_ids), "finish_reason": c.finish_reason})
        else:
            print(text)
    if args.attention:
        maps, src_labels, tgt_labels = attention_maps(tr, sentences[0], outs[0])
        path = plot_source_attention(maps, src_labels, tgt_labels, args.attention,
                                     title=f"{tr.model.family}: attention over the source")
        print(f"attention of sentence 1 drawn to {path}", file=sys.stderr)
    return 0


__all__ = ["add_translation_options", "read_sentences", "register", "run_translation"]

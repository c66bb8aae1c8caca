"""CLI: ``chainrule fill-mask MODEL_DIR "The [MASK] sat on the mat." [--top-k K] [--json]``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "fill-mask",
        help="the most probable fillers of each [MASK] in a sentence (masked models: bert)",
        description="Print the top-k tokens for every [MASK] in TEXT with their probabilities, "
        "predicted by a masked model from the rest of the sentence.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("text", metavar="TEXT", help='a sentence with [MASK], e.g. "The [MASK] sat."')
    p.add_argument("-k", "--top-k", type=int, default=5, help="fillers per [MASK] (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.decoding.fill_mask import fill_mask
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model)
    slots = fill_mask(model, tok, args.text, args.top_k)
    if args.json:
        print_json({"text": args.text, "masks": [
            [{"token": f.token, "id": f.id, "prob": f.prob} for f in slot] for slot in slots]})
        return 0
    for n, slot in enumerate(slots, 1):
        if len(slots) > 1:
            print(f"[MASK] {n}:")
        print_table([{"rank": r, "token": f.token, "prob": f.prob}
                     for r, f in enumerate(slot, 1)])
    return 0

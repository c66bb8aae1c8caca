"""CLI: ``chainrule attention MODEL_DIR "sentence" -o a.png [--json]`` -- every layer x head."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "attention",
        help="draw the attention weights of every layer and head of a transformer (gpt, bert)",
        description="Run TEXT (framed as <s> ... </s>) through a transformer and draw its "
        "attention weights, one heatmap per layer x head; --json prints them instead.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("-o", "--output", metavar="OUT.png", help="where to draw the grid")
    p.add_argument("--json", action="store_true",
                   help="print the tokens and the weights [layer][head][query][key] as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.errors import ConfigError
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.models.attention_maps import attention_maps, transformer_blocks

    if not args.output and not args.json:
        raise ConfigError("say where the picture goes (-o OUT.png) or ask for --json.")
    model, tok = load_model_and_tokenizer(args.model)
    transformer_blocks(model)  # a model without attention: one sentence, before any work
    ids = [model.bos_id, *tok.encode(args.text), model.eos_id]
    limit = getattr(getattr(model, "cfg", None), "block_size", len(ids))
    if len(ids) > limit:
        raise ConfigError(f"the text is {len(ids)} tokens long with <s> and </s>; this model "
                          f"attends over at most {limit}; shorten it.")
    maps = attention_maps(model, ids)
    labels = [tok.decode([i]) for i in ids]
    if args.output:
        from chainrule.evaluation.attention_plot import plot_attention

        plot_attention(maps, labels, args.output, title=args.text)
    if args.json:
        print_json({"tokens": labels, "ids": ids, "weights": maps.tolist(),
                    **({"plot": args.output} if args.output else {})})
    else:
        L, H = maps.shape[:2]
        print(f"{L} layers x {H} heads over {len(ids)} tokens drawn to {args.output}")
    return 0

"""CLI: ``chainrule generate`` -- text from any saved model, with every decoding strategy."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, TextIO

from chainrule.errors import ConfigError, ModelFormatError


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a trained model",
        description="Generate text from MODEL_DIR (any family) by greedy decoding, sampling or "
        "beam search. Without --prompt the text starts from the beginning-of-sequence token.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="text to continue (repeat for a batch of prompts; default: empty)")
    p.add_argument("--source", action="append", metavar="TEXT",
                   help="conditional (encoder-decoder) models: the source to condition on, "
                        "e.g. the sentence to translate (one per --prompt; repeat for a batch)")
    add_decoding_options(p)
    p.add_argument("--chat", metavar="QUESTION",
                   help="one chat turn: render QUESTION with the model's chat template, "
                        "generate, and print the answer only (see `chainrule chat`)")
    p.add_argument("--system", metavar="TEXT", help="with --chat: the system message")
    p.add_argument("--template", metavar="chatml|plain",
                   help="with --chat: the chat template (default: the model's own, else plain)")
    p.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    p.add_argument("--json", action="store_true", help="print one JSON object with all outputs")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (neural models)")
    p.add_argument("--force", action="store_true",
                   help="generate even when the batch (prompts x --n or --beams) looks too large "
                        "for memory")
    p.set_defaults(func=run)


def add_decoding_options(p: argparse.ArgumentParser, max_tokens: int = 100) -> None:
    """The decoding options of ``generate`` (also used by ``chat``)."""
    p.add_argument("--strategy", default="sample", metavar="greedy|sample|beam",
                   help="decoding strategy (default: sample)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="sampling temperature, >= 0; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=int, metavar="K", help="sample among the K most probable")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P",
                   help="nucleus sampling: smallest set with mass >= P, in (0, 1]")
    p.add_argument("--min-p", type=float, default=0.0, metavar="P",
                   help="drop tokens below P x the most probable one's probability")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="> 1 discourages tokens already seen (default 1: off)")
    p.add_argument("--beams", type=int, default=4, metavar="B", help="beams for --strategy beam")
    p.add_argument("--length-penalty", type=float, default=1.0, metavar="A",
                   help="beam score = log-prob / length**A (default 1)")
    p.add_argument("--n", type=int, default=1, metavar="N", help="outputs per prompt")
    p.add_argument("--max-tokens", type=int, default=max_tokens, metavar="N",
                   help=f"most new tokens per output (default {max_tokens})")
    p.add_argument("--stop", nargs="+", default=[], metavar="S",
                   help="stop when the output contains any of these strings (not printed); "
                        "\\n and \\t mean newline and tab")
    p.add_argument("--seed", type=int, help="random seed (printed with --json when omitted)")
    p.add_argument("--no-truncate", action="store_true",
                   help="refuse prompts longer than the model's context instead of cutting them")


def generation_config(args: argparse.Namespace, seed: int, stop: tuple[str, ...] = ()):
    """The ``GenerationConfig`` the decoding options in ``args`` describe."""
    from chainrule.decoding import GenerationConfig

    return GenerationConfig(
        strategy=args.strategy, max_new_tokens=args.max_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        repetition_penalty=args.repetition_penalty, num_beams=args.beams,
        length_penalty=args.length_penalty, n=args.n,
        stop=(*map(_unescape, args.stop), *stop), seed=seed,
        truncate=not args.no_truncate,
    )


def load_model_and_tokenizer(model_dir: str, device: str | None = None):
    """A saved model (moved to ``device``) and its tokenizer, checked to belong together."""
    from chainrule.models import load_model
    from chainrule.tokenizers import load_tokenizer
    from chainrule.training.build import resolve_device

    if device is not None:
        device = resolve_device(device)  # refuses CUDA where there is none, before any work
    model = load_model(model_dir)
    if device is not None:
        if not hasattr(model, "to"):
            raise ConfigError(f"--device applies to neural models, not to a {model.family} model.")
        model.to(device)
    tokenizer = load_tokenizer(model_dir)
    if tokenizer.vocab_size != model.vocab_size:
        raise ModelFormatError(
            f"{model_dir!r}: the tokenizer has {tokenizer.vocab_size} tokens but the model "
            f"{model.vocab_size}; the directory mixes files of different models."
        )
    return model, tokenizer


def run(args: argparse.Namespace) -> int:
    from chainrule.decoding import generate, stream
    from chainrule.decoding.session import resolve_seed

    seed = resolve_seed(args.seed)
    config = generation_config(args, seed)
    if args.stream and args.json:
        raise ConfigError("--stream prints text as it comes and --json prints one object at the "
                          "end; choose one.")
    model, tokenizer = load_model_and_tokenizer(args.model_dir, args.device)
    if args.chat is not None:
        return _chat_turn(args, model, tokenizer, seed)
    if args.system is not None or args.template is not None:
        raise ConfigError("--system and --template belong to a chat turn; add --chat QUESTION.")
    sources = args.source
    prompts = args.prompt or [""] * (len(sources) if sources else 1)
    source_tokenizer = None
    if model.conditional:
        from chainrule.evaluation.textscore import load_source_tokenizer

        source_tokenizer = load_source_tokenizer(args.model_dir, tokenizer)
    elif sources:
        raise ConfigError(f"--source is for conditional (encoder-decoder) models; a "
                          f"{model.family} model generates from its prompt alone.")
    if model.conditional and not sources:
        raise ConfigError(f"a {model.family} model translates a source: pass --source TEXT.")
    kw = {"sources": sources, "source_tokenizer": source_tokenizer,
          "check_memory": not args.force}
    with warnings.catch_warnings():
        # print warnings (a truncated prompt) as one line each, when they happen
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        if args.stream:
            _stream(stream(model, prompts, config, tokenizer=tokenizer, **kw), prompts, config.n)
            return 0
        from chainrule.cli._progress import counter

        rows = len(prompts) * (config.n if config.strategy != "beam" else 1)
        total = rows * config.max_new_tokens if config.strategy != "beam" else 0
        with counter(total, "generating", min_total=2_000) as tick:  # long jobs only
            results = generate(model, prompts, config, tokenizer=tokenizer, on_token=tick, **kw)
    if args.json:
        from chainrule.cli._output import print_json

        print_json({
            "model": str(args.model_dir),
            "strategy": config.strategy,
            "seed": seed,
            "prompts": [
                {"prompt": p, **({"source": sources[i]} if sources else {}),
                 "outputs": [c.to_dict() for c in outs]}
                for i, (p, outs) in enumerate(zip(prompts, results))
            ],
        })
        return 0
    many = len(prompts) > 1 or config.n > 1
    for i, (p, outs) in enumerate(zip(prompts, results)):
        for j, c in enumerate(outs):
            if many:
                print(_header(i, j, len(prompts), config.n, c.score if config.strategy == "beam"
                              else None))
            print(p + (c.text or ""))
    return 0


# -- one chat turn (--chat); `chainrule chat` repeats it ------------------------------------
def conversation_start(system: str | None) -> list[dict[str, str]]:
    """The messages a conversation starts with: the system message, if any."""
    return [{"role": "system", "content": system}] if system else []


def chat_prompt(model: Any, tokenizer: Any, template: Any, messages: list[dict[str, str]]):
    """Prompt ids of ``messages`` rendered with ``template`` (decoding adds BOS)."""
    from chainrule.tokenizers.chat import chat_prompt_ids

    return chat_prompt_ids(tokenizer, template.render(messages), model.bos_id)


class _AnswerWriter:
    """Writes streamed pieces without the answer's leading and trailing whitespace."""

    def __init__(self, out: TextIO):
        self.out, self.started, self.pending = out, False, ""

    def write(self, piece: str) -> None:
        if not self.started:
            piece = piece.lstrip()
            self.started = bool(piece)
        text = self.pending + piece
        body = text.rstrip()
        self.pending = text[len(body):]
        if body:
            self.out.write(body)
            self.out.flush()

    def close(self) -> None:
        self.out.write("\n")
        self.out.flush()


def stream_answer(model, tokenizer, ids, config, out: TextIO):
    """Stream the answer to prompt ``ids`` onto ``out``; return its ``Completion``."""
    from chainrule.decoding import stream

    results: list = []
    writer = _AnswerWriter(out)
    for ev in stream(model, [ids], config, tokenizer=tokenizer, results=results):
        writer.write(ev.text)
    writer.close()
    return results[0][0]


def _chat_turn(args: argparse.Namespace, model, tokenizer, seed: int) -> int:
    """``chainrule generate MODEL_DIR --chat QUESTION``: one turn, the answer printed alone."""
    from chainrule.decoding import generate
    from chainrule.tokenizers.chat import load_chat_template

    if args.prompt or args.source:
        raise ConfigError("--chat is the prompt of a chat turn; drop --prompt and --source.")
    template = load_chat_template(args.model_dir, args.template)
    config = generation_config(args, seed, stop=template.stop)
    messages = [*conversation_start(args.system), {"role": "user", "content": args.chat}]
    ids = chat_prompt(model, tokenizer, template, messages)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        if args.stream and config.n == 1:
            stream_answer(model, tokenizer, ids, config, sys.stdout)
            return 0
        [outs] = generate(model, [ids], config, tokenizer=tokenizer)
    answers = [template.answer(c.text or "") for c in outs]
    if args.json:
        from chainrule.cli._output import print_json

        print_json({"model": str(args.model_dir), "template": template.name,
                    "strategy": config.strategy, "seed": seed, "messages": messages,
                    "outputs": [{**c.to_dict(), "answer": a} for c, a in zip(outs, answers)]})
        return 0
    for j, (c, answer) in enumerate(zip(outs, answers)):
        if config.n > 1:
            print(_header(0, j, 1, config.n, c.score if config.strategy == "beam" else None))
        print(answer)
    return 0


def _unescape(s: str) -> str:
    """Shell-friendly escapes in stop strings: backslash-n, backslash-t, double backslash."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _header(i: int, j: int, n_prompts: int, n: int, score: float | None) -> str:
    parts = []
    if n_prompts > 1:
        parts.append(f"prompt {i + 1}")
    if n > 1:
        parts.append(f"output {j + 1}")
    if score is not None:
        parts.append(f"score {score:.4f}")
    return "--- " + ", ".join(parts) + " ---"


def _stream(events, prompts: list[str], n: int) -> None:
    """Print pieces as they come; rows of a batch are printed one after the other."""
    out = sys.stdout
    if len(prompts) == 1 and n == 1:
        out.write(prompts[0])
        out.flush()
        for ev in events:
            if ev.text:
                out.write(ev.text)
                out.flush()
        out.write("\n")
        return
    # several outputs interleave token by token: show the first live, buffer the rest
    order = [(i, j) for i in range(len(prompts)) for j in range(n)]
    buffers = {key: "" for key in order}
    done: set = set()
    current = 0
    out.write(_header(*order[0], len(prompts), n, None) + "\n" + prompts[0])
    for ev in events:
        key = (ev.prompt, ev.sample)
        if key == order[current]:
            out.write(ev.text)
        else:
            buffers[key] += ev.text
        if ev.finish_reason is not None:
            done.add(key)
        while order[current] in done and current + 1 < len(order):
            current += 1
            i, j = order[current]
            out.write("\n" + _header(i, j, len(prompts), n, None) + "\n" + prompts[i]
                      + buffers[order[current]])
        out.flush()
    out.write("\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)

"""CLI: ``chainrule chat MODEL_DIR`` -- a conversation on stdin, one streamed answer per line.

Each turn is the one turn of ``generate --chat`` (:mod:`chainrule.cli.generate`): it renders
the whole conversation with the model's chat template (:mod:`chainrule.tokenizers.chat`),
generates with the decoding library until the template's
end of turn, and prints the answer only. Lines starting with ``/`` are commands: ``/reset``
forgets the conversation (the system message stays), ``/exit`` ends it, as does end of input,
so ``printf 'Hi\\n/reset\\nBye\\n' | chainrule chat MODEL_DIR`` works without a terminal.
Answers go to stdout; prompts and notices to stderr.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from chainrule.cli.generate import (
    _show_warning,
    add_decoding_options,
    chat_prompt,
    conversation_start,
    generation_config,
    load_model_and_tokenizer,
    stream_answer,
)
from chainrule.errors import ConfigError

COMMANDS = {"/reset": "forget the conversation", "/exit": "end the chat (or end of input)"}


def register(sub) -> None:
    p = sub.add_parser(
        "chat",
        help="chat with a model: read questions from stdin, stream the answers",
        description="Talk to MODEL_DIR in its chat format (chat_template.json, else the plain "
        "'User: / Assistant:' prompt). Type a message per line; /reset forgets the "
        "conversation, /exit or end of input ends it. Works with piped stdin too.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--system", metavar="TEXT", help="the system message (kept across /reset)")
    p.add_argument("--template", metavar="chatml|plain",
                   help="the chat template (default: the model's own, else plain)")
    add_decoding_options(p, max_tokens=256)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    p.set_defaults(func=run)


def _read_line(interactive: bool) -> str | None:
    """The next line of input, None at end of input."""
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        try:
            return input("> ")
        except EOFError:
            print(file=sys.stderr)
            return None
    line = sys.stdin.readline()
    return line if line else None


def run(args: argparse.Namespace) -> int:
    from chainrule.decoding.session import resolve_seed
    from chainrule.tokenizers.chat import load_chat_template

    model, tokenizer = load_model_and_tokenizer(args.model_dir, args.device)
    template = load_chat_template(args.model_dir, args.template)
    seed = resolve_seed(args.seed)
    config = generation_config(args, seed, stop=template.stop)
    if config.n != 1:
        raise ConfigError("chat gives one answer per turn; drop --n (use `generate --chat` for "
                          "several).")
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {args.model_dir} ({template.name} template); "
              + "; ".join(f"{c} to {what}" for c, what in COMMANDS.items()) + ".",
              file=sys.stderr)
    messages = conversation_start(args.system)
    while (line := _read_line(interactive)) is not None:
        text = line.strip()
        if not text:
            continue
        command = text.split()[0] if text.startswith("/") else None
        if command == "/exit":
            break
        if command == "/reset":
            messages = conversation_start(args.system)
            print("(conversation reset)", file=sys.stderr)
        elif command is not None:
            print(f"unknown command {command!r}; the commands are {', '.join(COMMANDS)}.",
                  file=sys.stderr)
        if command is not None:
            continue
        messages.append({"role": "user", "content": text})
        ids = chat_prompt(model, tokenizer, template, messages)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            done = stream_answer(model, tokenizer, ids, config, sys.stdout)
        messages.append({"role": "assistant", "content": template.answer(done.text or "")})
    return 0

"""Chat templates: a conversation as the text a chat model was fine-tuned on.

A chat model continues a conversation written in one fixed format. Hugging Face ships that
format as a Jinja program (``chat_template`` in ``tokenizer_config.json``, or GGUF's
``tokenizer.chat_template``); chainrule never executes it. It renders the formats it knows
itself and recognises them in a model's Jinja text:

``chatml`` (SmolLM2, Qwen, ...)::

    <|im_start|>system
    You are a helpful assistant.<|im_end|>
    <|im_start|>user
    What is the capital of France?<|im_end|>
    <|im_start|>assistant
                                       <- generation prompt; the answer ends with <|im_end|>

A model's template may add a default system message when the conversation has none (SmolLM2's
does); :func:`template_from_jinja` finds it in the Jinja text.

``plain`` (GPT-2 style, for models never tuned to chat)::

    You are a helpful assistant.       <- a system message, then a blank line

    User: What is the capital of France?
    Assistant: Paris.
    User: And of Italy?
    Assistant:                         <- generation prompt; the answer ends at "\\nUser:"

A model directory keeps the original Jinja text verbatim in ``chat_template.json``
(``{"format": "chainrule-chat-template", "version": 1, "jinja": ...}``);
:func:`load_chat_template` reads it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainrule.errors import TokenizerError
from chainrule.fileio import read_json, write_json

CHAT_TEMPLATE_FORMAT = "chainrule-chat-template"
CHAT_TEMPLATE_VERSION = 1
CHAT_TEMPLATE_FILE = "chat_template.json"
TEMPLATES = ("chatml", "plain")
_HINT = "pass --template chatml or --template plain"

Message = Mapping[str, str]


@dataclass(frozen=True)
class ChatTemplate:
    """One conversation format.

    Attributes:
        name: ``"chatml"`` or ``"plain"``.
        default_system: a system message put first when the conversation has none (None: none).
    """

    name: str
    default_system: str | None = None

    def __post_init__(self) -> None:
        if self.name not in TEMPLATES:
            raise TokenizerError(f"unknown chat template {self.name!r}; {_HINT}.")

    @property
    def stop(self) -> tuple[str, ...]:
        """Strings that end an assistant turn (cut off the answer by decoding)."""
        return ("<|im_end|>",) if self.name == "chatml" else ("\nUser:",)

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The text of ``messages``, plus the start of the assistant's turn if asked.

        >>> ChatTemplate("plain").render([{"role": "user", "content": "Hi"}])
        'User: Hi\\nAssistant:'
        """
        messages = _checked(messages, self.name)
        if self.default_system is not None and (not messages or messages[0]["role"] != "system"):
            messages = [{"role": "system", "content": self.default_system}, *messages]
        if self.name == "chatml":
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                           for m in messages)
            return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")
        parts = []
        for m in messages:
            if m["role"] == "system":
                parts.append(f"{m['content']}\n\n")
            else:
                parts.append(f"{m['role'].capitalize()}: {m['content']}\n")
        return "".join(parts) + ("Assistant:" if add_generation_prompt else "")

    def answer(self, text: str) -> str:
        """The assistant's answer from generated text (stop strings are already cut)."""
        for s in self.stop:
            text = text.split(s, 1)[0]
        return text.strip()


def _checked(messages: Sequence[Message], template: str) -> list[dict[str, str]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise TokenizerError("a conversation is a list of {'role': ..., 'content': ...} messages.")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) \
                or not isinstance(m.get("content"), str) or not m["role"]:
            raise TokenizerError(f"message {i} is not a {{'role': str, 'content': str}} mapping; "
                                 "a conversation is a list of such messages.")
        if template == "plain" and m["role"] not in ("system", "user", "assistant"):
            raise TokenizerError(f"message {i} has role {m['role']!r}; the plain template knows "
                                 "system, user and assistant only.")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def get_template(template: str | ChatTemplate) -> ChatTemplate:
    """A :class:`ChatTemplate` from its name (``chatml`` / ``plain``) or itself."""
    if isinstance(template, ChatTemplate):
        return template
    return ChatTemplate(str(template))


def render_chat(messages: Sequence[Message], template: str | ChatTemplate = "chatml",
                add_generation_prompt: bool = True) -> str:
    """Render ``messages`` (dicts with ``role`` and ``content``) with ``template``.

    >>> render_chat([{"role": "user", "content": "Hi"}])
    '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    return get_template(template).render(messages, add_generation_prompt)


# -- recognising a model's Jinja template, without running it --------------------------------
_NL = r"(?:\n|\\n)"  # a newline, written as itself or as a Jinja string escape
_KEPT = r"(?!\s*\{[%{#]-)"  # ... and not eaten by the whitespace control of a following tag
_ROLE = r"message\s*(?:\[\s*['\"]role['\"]\s*\]|\.role)"
_CONTENT = r"message\s*(?:\[\s*['\"]content['\"]\s*\]|\.content)"
_GLUE = r"[\s'\"+~{}\-]*"  # what joins pieces: quotes, +, ~, {{ }}, whitespace control
_CHATML = [
    re.compile(r"<\|im_start\|>" + _GLUE + _ROLE),  # <|im_start|>{role}
    re.compile(_ROLE + _GLUE + _NL + _KEPT),  # {role}\n
    re.compile(_CONTENT + _GLUE + r"<\|im_end\|>" + _GLUE + _NL + _KEPT),  # {content}<|im_end|>\n
    re.compile(r"add_generation_prompt.{0,80}?<\|im_start\|>assistant" + _NL + _KEPT, re.DOTALL),
]
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system" + _NL + r"((?:[^'\"{}\\]|\\.)*?)<\|im_end\|>")


def template_from_jinja(jinja: str) -> ChatTemplate:
    """The template a model's Jinja ``chat_template`` renders, found without executing it.

    Recognises ChatML (``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message and an
    ``<|im_start|>assistant\\n`` generation prompt), with the default system message the
    template adds when a conversation has none.

    Raises:
        TokenizerError: a template chainrule does not recognise (one sentence suggesting
            ``--template``).
    """
    if not isinstance(jinja, str) or not all(p.search(jinja) for p in _CHATML):
        raise TokenizerError("the model's chat template is not one chainrule recognises (it "
                             f"renders ChatML and plain prompts without running Jinja); {_HINT}.")
    m = _DEFAULT_SYSTEM.search(jinja)
    system = None
    if m:
        system = re.sub(r"\\(.)", lambda e: {"n": "\n", "t": "\t"}.get(e[1], e[1]), m[1])
    return ChatTemplate("chatml", system)


def detect_template(jinja: str) -> str:
    """The name of the template a model's Jinja text renders (``"chatml"``), or TokenizerError."""
    return template_from_jinja(jinja).name


# -- model directories -------------------------------------------------------------------------
def write_chat_template(directory: str | os.PathLike, jinja: str) -> Path:
    """Keep a model's Jinja chat template verbatim as ``directory/chat_template.json``."""
    path = Path(directory) / CHAT_TEMPLATE_FILE
    write_json(path, {"format": CHAT_TEMPLATE_FORMAT, "version": CHAT_TEMPLATE_VERSION,
                      "jinja": jinja})
    return path


def read_chat_jinja(directory: str | os.PathLike) -> str | None:
    """The Jinja text kept in ``directory/chat_template.json``, or None without that file."""
    path = Path(directory) / CHAT_TEMPLATE_FILE
    if not path.exists():
        return None
    data: Any = read_json(path, what="chat template")
    if not isinstance(data, dict) or data.get("format") != CHAT_TEMPLATE_FORMAT \
            or not isinstance(data.get("jinja"), str):
        raise TokenizerError(f"{str(path)!r} is not a chainrule chat template file; re-import "
                             f"the model or {_HINT}.")
    if data.get("version") != CHAT_TEMPLATE_VERSION:
        raise TokenizerError(f"{str(path)!r} has version {data.get('version')!r}; this chainrule "
                             f"reads version {CHAT_TEMPLATE_VERSION}.")
    return data["jinja"]


def load_chat_template(directory: str | os.PathLike, name: str | None = None, *,
                       required: bool = False) -> ChatTemplate:
    """The chat template of a model directory.

    Args:
        directory: a model directory.
        name: ``chatml`` or ``plain`` to choose the format (a default system message of the
            model's own template of that format is kept); None: the model's template.
        required: refuse a model without ``chat_template.json`` instead of using ``plain``.
    """
    jinja = read_chat_jinja(directory)
    if name is not None:
        chosen = get_template(name)
        if jinja is not None:
            try:
                own = template_from_jinja(jinja)
            except TokenizerError:
                return chosen
            return own if own.name == chosen.name else chosen
        return chosen
    if jinja is None:
        if required:
            raise TokenizerError(f"{str(directory)!r} has no chat template ({CHAT_TEMPLATE_FILE});"
                                 f" {_HINT}.")
        return get_template("plain")
    return template_from_jinja(jinja)


def chat_prompt_ids(tokenizer: Any, text: str, bos_id: int | None = None) -> list[int]:
    """Ids of a rendered chat prompt, special tokens (``<|im_start|>``) recognised.

    Decoding puts BOS in front of every prompt, so a leading ``bos_id`` (SmolLM2's BOS *is*
    ``<|im_start|>``) is dropped here rather than doubled.
    """
    ids = list(tokenizer.encode(text, allow_special=True))
    if bos_id is not None and ids[:1] == [bos_id]:
        ids = ids[1:]
    return ids


__all__ = [
    "CHAT_TEMPLATE_FILE",
    "CHAT_TEMPLATE_FORMAT",
    "TEMPLATES",
    "ChatTemplate",
    "chat_prompt_ids",
    "detect_template",
    "get_template",
    "load_chat_template",
    "read_chat_jinja",
    "render_chat",
    "template_from_jinja",
    "write_chat_template",
]

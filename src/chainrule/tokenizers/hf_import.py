"""Read a Hugging Face ``tokenizer.json`` of byte-level BPE as a :class:`ByteBPETokenizer`.

The counterpart of :mod:`chainrule.tokenizers.hf` (which writes one). Only what chainrule can
reproduce exactly is read: a ``BPE`` model over GPT-2's byte-to-unicode alphabet, the
``ByteLevel`` pre-tokenizer with GPT-2's pattern (alone, or after the steps one of
:data:`ByteBPETokenizer.HF_PRE_TOKENIZERS` reproduces, e.g. SmolLM2's
``Digits(individual_digits=True)``), no normaliser, no dropout, no word prefixes or suffixes.
A byte the vocabulary has no symbol for is dropped, as ``tokenizers`` does. Anything else is
refused with one sentence, never approximated.

``added_tokens`` become chainrule specials (kept at their ids, never split). ``tokenizers`` finds
every added token inside any text; chainrule finds specials only when asked
(``encode(text, allow_special=True)``), so ordinary text without those spellings encodes to the
same ids, and a chat prompt is encoded with ``allow_special=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError, TokenizerError
from chainrule.fileio import read_json
from chainrule.tokenizers.bytebpe import ByteBPETokenizer

#: id -> placeholder spelling for ids a model has but its tokenizer.json does not define
PLACEHOLDER = "<|chainrule_unused_{}|>"


def _byte_level(step: Any) -> bool:
    """A ``ByteLevel`` step that splits with GPT-2's pattern and adds no leading space."""
    return (isinstance(step, dict) and step.get("type") == "ByteLevel"
            and not step.get("add_prefix_space", False) and step.get("use_regex", True))


def _pre_tokenization(pre: Any, source: str) -> dict[str, Any]:
    """Options of :class:`ByteBPETokenizer` that reproduce ``pre`` (refuses what cannot)."""
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == \
        "Sequence" else [pre]
    if steps and _byte_level(steps[-1]):
        rest = steps[:-1]
        if not rest:
            return {}
        option = _pretokenizer_option(rest)
        if option is not None:
            return option
    desc = _describe(pre)
    raise TokenizerError(
        f"{source} pre-tokenizes with {desc}, which chainrule's byte-level BPE cannot reproduce "
        "exactly (GPT-2's ByteLevel pattern, optionally after Digits); only such tokenizers are "
        "imported."
    )


def _pretokenizer_option(rest: list[Any]) -> dict[str, Any] | None:
    """The ``pretokenizer`` option of our byte-level BPE that does what the steps before
    ``ByteLevel`` do (``ByteBPETokenizer.HF_PRE_TOKENIZERS``), else None."""
    for option, steps in ByteBPETokenizer.HF_PRE_TOKENIZERS.items():
        if [dict(s) for s in steps] == rest:
            return {"pretokenizer": option}
    return None


def _describe(pre: Any) -> str:
    if not isinstance(pre, dict):
        return "no byte-level pre-tokenizer"
    if pre.get("type") == "Sequence":
        return "a sequence of " + " + ".join(str(s.get("type")) for s in pre.get("pretokenizers",
                                                                              []))
    if pre.get("type") == "ByteLevel":
        return "ByteLevel with " + ("add_prefix_space" if pre.get("add_prefix_space")
                                    else "use_regex=false")
    return f"{pre.get('type')!r}"


def _check_model(model: Any, data: dict[str, Any], source: str) -> None:
    if not isinstance(model, dict) or model.get("type") != "BPE":
        kind = model.get("type") if isinstance(model, dict) else None
        raise TokenizerError(
            f"{source} is a {kind or 'non-BPE'} tokenizer, not byte-level BPE; chainrule imports "
            "byte-level BPE tokenizers (GPT-2's kind, used by SmolLM2 and many Llama-architecture "
            "models) only."
        )
    if data.get("normalizer") is not None:
        raise TokenizerError(
            f"{source} normalises text ({data['normalizer'].get('type')!r}) before splitting, "
            "which chainrule's byte-level BPE does not do; only tokenizers without a normalizer "
            "are imported."
        )
    unsupported = [k for k in ("dropout", "continuing_subword_prefix", "end_of_word_suffix")
                   if model.get(k)]
    unsupported += [k for k in ("byte_fallback", "ignore_merges") if model.get(k)]
    if unsupported:
        raise TokenizerError(
            f"{source} uses BPE option {unsupported[0]!r}, which chainrule's byte-level BPE does "
            "not have; only plain byte-level BPE tokenizers are imported."
        )
    decoder = data.get("decoder")
    steps = decoder.get("decoders", []) if isinstance(decoder, dict) and \
        decoder.get("type") == "Sequence" else [decoder]
    if not any(isinstance(s, dict) and s.get("type") == "ByteLevel" for s in steps):
        raise TokenizerError(
            f"{source} has no ByteLevel decoder, so it is not a byte-level BPE tokenizer; only "
            "byte-level BPE tokenizers are imported."
        )


def _merges(raw: Any, source: str) -> list[tuple[str, str]]:
    out = []
    for m in raw or []:
        pair = m.split(" ") if isinstance(m, str) else m
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise TokenizerError(f"{source} has a malformed merge {m!r}; the file is corrupt.")
        out.append((str(pair[0]), str(pair[1])))
    return out


def bytebpe_from_hf(
    data: dict[str, Any],
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    vocab_size: int | None = None,
    source: str = "tokenizer.json",
) -> ByteBPETokenizer:
    """A :class:`ByteBPETokenizer` that gives the same ids as ``tokenizers`` on ``data``.

    Args:
        data: the parsed ``tokenizer.json``.
        bos_token, eos_token: spellings of BOS and EOS (added tokens); default: EOS is
            ``<|endoftext|>`` when present, BOS is EOS.
        vocab_size: the model's vocabulary size, when it is larger than the tokenizer's (padded
            embedding matrices): the extra ids become unused specials ``<|chainrule_unused_N|>``.
        source: how to name the file in messages.
    Raises:
        TokenizerError: not byte-level BPE, or something chainrule cannot reproduce.
    """
    if not isinstance(data, dict) or "model" not in data:
        raise TokenizerError(f"{source} is not a Hugging Face tokenizer.json (no 'model').")
    model = data["model"]
    _check_model(model, data, source)
    options = _pre_tokenization(data.get("pre_tokenizer"), source)

    by_id: dict[int, str] = {}
    for tok, i in (model.get("vocab") or {}).items():
        by_id[int(i)] = tok
    specials: dict[str, int] = {}
    for added in data.get("added_tokens") or []:
        i, tok = int(added["id"]), str(added["content"])
        if by_id.get(i, tok) != tok:
            raise TokenizerError(f"{source} gives id {i} to both {by_id[i]!r} and added token "
                                 f"{tok!r}; the file is corrupt.")
        by_id[i], specials[tok] = tok, i
    size = max(by_id, default=-1) + 1
    if vocab_size is not None:
        if size > vocab_size:
            raise TokenizerError(f"{source} defines id {size - 1}, beyond the model's vocabulary "
                                 f"of {vocab_size}; the tokenizer belongs to another model.")
        size = vocab_size
    vocab = []
    for i in range(size):
        if i not in by_id:  # a gap (or a padded embedding row): a special nothing encodes to
            by_id[i] = PLACEHOLDER.format(i)
            specials[by_id[i]] = i
        vocab.append(by_id[i])
    if eos_token is None:
        eos_token = "<|endoftext|>" if "<|endoftext|>" in specials else None
    if bos_token is None:
        bos_token = eos_token
    for what, tok in (("BOS", bos_token), ("EOS", eos_token)):
        if tok is None or tok not in specials:
            raise TokenizerError(
                f"{source}: the {what} token {tok!r} is not one of its added tokens; name BOS and "
                "EOS in tokenizer_config.json or config.json."
            )
    try:
        return ByteBPETokenizer(vocab, _merges(model.get("merges"), source), specials,
                                bos_token=bos_token, eos_token=eos_token, **options)
    except KeyError as e:
        raise TokenizerError(
            f"{source} merges into a token {e} that its vocabulary does not define; the file is "
            "corrupt."
        ) from None


def _json(path: Path, what: str) -> Any:
    try:
        return read_json(path, what=what)
    except ChainruleError as e:
        raise TokenizerError(str(e)) from None


def _spelling(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "<|im_end|>", ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


def _first_id(value: Any) -> int | None:
    if isinstance(value, list):  # several EOS ids (Llama 3): the first is the tokenizer's
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_hf_tokenizer(directory: str | os.PathLike, *, bos_id: Any = None, eos_id: Any = None,
                      vocab_size: int | None = None) -> tuple[ByteBPETokenizer, str | None]:
    """The tokenizer and Jinja chat template (or None) of a Hugging Face model directory.

    Args:
        directory: holds ``tokenizer.json`` and optionally ``tokenizer_config.json`` (BOS/EOS
            spellings, ``chat_template``) or ``chat_template.jinja``.
        bos_id, eos_id: the model's ids from its ``config.json``; they win over
            ``tokenizer_config.json``'s spellings (an id list counts by its first entry).
        vocab_size: the model's vocabulary size (see :func:`bytebpe_from_hf`).
    """
    directory = Path(directory)
    path = directory / "tokenizer.json"
    if not path.exists():
        raise TokenizerError(f"{str(directory)!r} has no tokenizer.json; chainrule needs the fast "
                             "(tokenizers) file to import the vocabulary.")
    data = _json(path, "tokenizer file")
    cfg_path = directory / "tokenizer_config.json"
    cfg = _json(cfg_path, "tokenizer config") if cfg_path.exists() else {}
    cfg = cfg if isinstance(cfg, dict) else {}
    by_id = {}
    if isinstance(data, dict):
        by_id = {i: t for t, i in ((data.get("model") or {}).get("vocab") or {}).items()}
        by_id.update({a.get("id"): a.get("content") for a in data.get("added_tokens") or []})
    bos = by_id.get(_first_id(bos_id)) or _spelling(cfg.get("bos_token"))
    eos = by_id.get(_first_id(eos_id)) or _spelling(cfg.get("eos_token"))
    tok = bytebpe_from_hf(data, bos_token=bos, eos_token=eos, vocab_size=vocab_size,
                          source=repr(str(path)))
    template = cfg.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if template is None and (directory / "chat_template.jinja").exists():
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    return tok, template if isinstance(template, str) else None


__all__ = ["PLACEHOLDER", "bytebpe_from_hf", "read_hf_tokenizer"]

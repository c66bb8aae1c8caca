"""A byte-level BPE tokenizer from the metadata of a GGUF file (llama.cpp's model format).

A GGUF carries no ``tokenizer.json``: its ``tokenizer.ggml.*`` keys hold the vocabulary (one
string per id), the merges (``"Ġ t"``, in rank order), a type per token (1 normal, 2 unknown,
3 control, 4 user-defined, 5 unused, 6 byte), the BOS/EOS ids and ``tokenizer.ggml.pre``, the
name llama.cpp gives to the way text is cut into pieces before merging. Only ``gpt2``-model
vocabularies (byte-level BPE) are read, and only pre-tokenisations chainrule reproduces exactly:

=====================================  =====================================================
``tokenizer.ggml.pre``                 chainrule's ``ByteBPETokenizer(pretokenizer=...)``
=====================================  =====================================================
``gpt2`` (or absent)                   ``"gpt2"``: GPT-2's pattern
``smollm``, ``starcoder``, ``refact``  ``"gpt2-digits"``: every numeric character alone, then
``codeshell``                          GPT-2's pattern on the runs between (llama.cpp splits
                                       ``\\p{N}`` first; Hugging Face's ``tokenizer.json`` of
                                       SmolLM2 has ``Digits(individual_digits=True)`` before
                                       ``ByteLevel``)
=====================================  =====================================================

Control, unknown and unused tokens become chainrule specials (kept at their ids, never produced
by merging, recognised in text only with ``allow_special=True``). A vocabulary may lack some of
the 256 byte symbols (SmolLM2 has none for 0x04, 0xF1, ...): such bytes are dropped before
merging, as Hugging Face's BPE and llama.cpp drop them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chainrule.errors import TokenizerError
from chainrule.tokenizers._pretok import bytes_to_unicode
from chainrule.tokenizers.bytebpe import ByteBPETokenizer

#: ``tokenizer.ggml.pre`` -> chainrule's pre-tokenisation option
GGUF_PRE_TOKENIZERS = {
    "gpt2": "gpt2",
    "smollm": "gpt2-digits",
    "starcoder": "gpt2-digits",
    "refact": "gpt2-digits",
    "codeshell": "gpt2-digits",
}
#: token types that become specials: unknown, control, unused
SPECIAL_TYPES = (2, 3, 5)


def bytebpe_from_gguf(metadata: Mapping[str, Any], source: str = "the GGUF file"
                      ) -> ByteBPETokenizer:
    """The :class:`ByteBPETokenizer` described by a GGUF file's ``tokenizer.ggml.*`` metadata.

    Args:
        metadata: key -> value (strings, numbers, lists), e.g. from
            :func:`chainrule.models.gguf.read_gguf`.
        source: how to name the file in messages.
    Raises:
        TokenizerError: not a byte-level BPE vocabulary, an unknown pre-tokeniser, or a
            vocabulary that contradicts itself.
    """
    model = metadata.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerError(
            f"{source} has a {model!r} tokenizer; chainrule reads GGUF vocabularies of byte-level "
            "BPE only (tokenizer.ggml.model 'gpt2', as SmolLM2 and Llama 3 use), not "
            "sentencepiece ('llama') or others."
        )
    pre = metadata.get("tokenizer.ggml.pre", "gpt2")
    if pre not in GGUF_PRE_TOKENIZERS:
        raise TokenizerError(
            f"{source} pre-tokenises text the {pre!r} way, which chainrule cannot reproduce "
            f"exactly; supported: {', '.join(sorted(GGUF_PRE_TOKENIZERS))}."
        )
    tokens = [str(t) for t in metadata.get("tokenizer.ggml.tokens") or []]
    if not tokens:
        raise TokenizerError(f"{source} has no tokenizer.ggml.tokens; it carries no vocabulary.")
    types = list(metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    if len(types) != len(tokens):
        raise TokenizerError(f"{source} lists {len(types)} token types for {len(tokens)} tokens; "
                             "the file is corrupt.")
    specials = {t: i for i, (t, k) in enumerate(zip(tokens, types)) if int(k) in SPECIAL_TYPES}
    ids = {}
    for name in ("bos", "eos"):
        i = metadata.get(f"tokenizer.ggml.{name}_token_id")
        if i is not None and not 0 <= int(i) < len(tokens):
            raise TokenizerError(f"{source}: the {name.upper()} id {i} is outside its vocabulary "
                                 f"of {len(tokens)}; the file is corrupt.")
        ids[name] = None if i is None else int(i)
    if ids["eos"] is None and ids["bos"] is None:
        raise TokenizerError(f"{source} names neither a BOS nor an EOS token; chainrule frames "
                             "every sequence with them.")
    bos = ids["bos"] if ids["bos"] is not None else ids["eos"]
    eos = ids["eos"] if ids["eos"] is not None else ids["bos"]
    for i in (bos, eos):
        specials.setdefault(tokens[i], i)
    if any(tokens[i] != t for t, i in specials.items()):  # two specials spelled alike
        raise TokenizerError(f"{source} spells two special tokens the same; the file is corrupt.")
    alphabet = set(bytes_to_unicode().values())
    special_ids = set(specials.values())
    for i, t in enumerate(tokens):
        if i not in special_ids and not set(t) <= alphabet:
            raise TokenizerError(
                f"{source}: token {i} ({t!r}) is not spelled in GPT-2's byte alphabet, so the "
                "vocabulary is not byte-level BPE as chainrule reads it."
            )
    merges = []
    for m in metadata.get("tokenizer.ggml.merges") or []:
        pair = str(m).split(" ")
        if len(pair) != 2:
            raise TokenizerError(f"{source} has a malformed merge {m!r}; the file is corrupt.")
        merges.append((pair[0], pair[1]))
    try:
        return ByteBPETokenizer(tokens, merges, specials, bos_token=tokens[bos],
                                eos_token=tokens[eos], pretokenizer=GGUF_PRE_TOKENIZERS[pre])
    except KeyError as e:
        raise TokenizerError(f"{source} merges into or from a token {e} that its vocabulary "
                             "does not hold as an ordinary token; the file is corrupt.") from None


__all__ = ["GGUF_PRE_TOKENIZERS", "SPECIAL_TYPES", "bytebpe_from_gguf"]

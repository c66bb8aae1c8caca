"""Tiny tokenizers for the evaluation tests (not registered, so they never shadow real kinds)."""

from __future__ import annotations

from chainrule.tokenizers.base import BOS, EOS, PAD, UNK, Tokenizer

SPECIALS = [BOS, EOS, PAD, UNK]


class _ListTokenizer(Tokenizer):
    def __init__(self, pieces: list[str]):
        self.pieces = SPECIALS + list(pieces)
        self.index = {p: i for i, p in enumerate(self.pieces)}
        self.special_tokens = {s: i for i, s in enumerate(SPECIALS)}

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)

    def id_to_token(self, idx):
        return self.pieces[idx]

    def token_to_id(self, token):
        return self.index.get(token)

    def to_dict(self):
        return {"pieces": self.pieces[len(SPECIALS):]}

    @classmethod
    def from_dict(cls, data):
        return cls(data["pieces"])


class CharTok(_ListTokenizer):
    """One token per character; characters outside the alphabet become <unk>."""

    kind = "char"

    def encode(self, text, *, allow_special=False):
        return [self.index.get(c, self.special_tokens[UNK]) for c in text]


class PieceTok(_ListTokenizer):
    """Greedy longest match over a fixed piece list (GPT-2-like pieces such as ' cat')."""

    kind = "bytebpe"

    def encode(self, text, *, allow_special=False):
        ids, i = [], 0
        longest = max(len(p) for p in self.pieces)
        while i < len(text):
            for n in range(min(longest, len(text) - i), 0, -1):
                if text[i : i + n] in self.index and text[i : i + n] not in SPECIALS:
                    ids.append(self.index[text[i : i + n]])
                    i += n
                    break
            else:
                ids.append(self.special_tokens[UNK])
                i += 1
        return ids


class WordTok(_ListTokenizer):
    """Whitespace words; decode joins with single spaces; unknown words become <unk>."""

    kind = "word"

    def encode(self, text, *, allow_special=False):
        return [self.index.get(w, self.special_tokens[UNK]) for w in text.split()]

    def decode(self, ids):
        return " ".join(self.pieces[i] for i in ids)

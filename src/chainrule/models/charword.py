"""Character-composed word embeddings (the lecture's "character-based word embeddings").

A word's input vector is built from its spelling each time it is needed, so a word never seen
in training still gets one. The composer is Kim et al.'s (2016) character CNN with highway
layers:

    characters -> embeddings (char_dim) -> convolutions of widths 1..6 (25 x width filters each,
    at most ``max_filters``), tanh, max over positions -> ``n_highway`` highway layers
    z = t * relu(W_H y) + (1 - t) * y with t = sigmoid(W_T y + b_T), b_T = -2 at the start
    -> a linear map to the LM's embedding width

plus, optionally, an ordinary ("full") embedding row for the ``n_full`` most frequent ids,
added to the composed vector (the slide: "we still train a full word embedding, useful for
frequent words"). Characters are UTF-8 bytes between begin- and end-of-word markers; a special
token (``<unk>``, ``<s>``) is spelt with a marker no text byte can produce, so it never shares
a spelling with a literal word.

:class:`CharWordEmbedding` is a drop-in for ``nn.Embedding`` (``forward(ids)``): the LSTM family
uses it with ``word_repr = "char-cnn"``. Ids at or above ``vocab_size`` refer to words added for
the duration of :meth:`CharWordEmbedding.open_vocabulary`, which is how an unseen word is fed to
the network under its own spelling instead of as ``<unk>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

PAD, BOW, EOW, SPECIAL = 0, 1, 2, 3
BYTE0 = 4  # byte b is character id BYTE0 + b
N_CHARS = BYTE0 + 256
MAX_LEN = 20  # bytes of a word kept (longer words are cut: start and end kept)


def spell(word: str | None, special: bool = False, max_len: int = MAX_LEN) -> list[int]:
    """Character ids of one word, markers included (length max_len + 3 at most)."""
    if word is None:
        return [BOW, SPECIAL, EOW]
    b = word.encode("utf-8")
    if len(b) > max_len:
        b = b[: max_len - max_len // 2] + b[-(max_len // 2):]
    return [BOW, *([SPECIAL] if special else []), *(BYTE0 + x for x in b), EOW]


def spell_batch(words: Sequence[str | None], specials: Sequence[bool] | None = None,
                max_len: int = MAX_LEN) -> torch.Tensor:
    """(len(words), max_len + 3) character ids, PAD-filled."""
    specials = specials or [False] * len(words)
    out = torch.zeros(len(words), max_len + 3, dtype=torch.long)
    for i, (w, s) in enumerate(zip(words, specials, strict=True)):
        ids = spell(w, s, max_len)
        out[i, : len(ids)] = torch.tensor(ids)
    return out


class Highway(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.h = nn.Linear(width, width)
        self.t = nn.Linear(width, width)
        nn.init.constant_(self.t.bias, -2.0)  # carry the input through at the start

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.t(y))
        return t * torch.relu(self.h(y)) + (1 - t) * y


class CharCNN(nn.Module):
    """(N, L) character ids -> (N, out_dim) word vectors."""

    def __init__(self, out_dim: int, char_dim: int = 16, widths: Sequence[int] = (1, 2, 3, 4, 5, 6),
                 max_filters: int = 100, n_highway: int = 2):
        super().__init__()
        self.chars = nn.Embedding(N_CHARS, char_dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, min(25 * w, max_filters), w, padding=w - 1)
                                   for w in widths)
        width = sum(c.out_channels for c in self.convs)
        self.highways = nn.ModuleList(Highway(width) for _ in range(n_highway))
        self.out = nn.Linear(width, out_dim)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        x = self.chars(chars).transpose(1, 2)  # (N, char_dim, L)
        pad = (chars == PAD)[:, None]  # padded positions never win the max
        feats = []
        for conv in self.convs:
            y = torch.tanh(conv(x))[..., : chars.shape[1]]  # (N, F, L): windows ending at each position
            feats.append(y.masked_fill(pad, -1.0).amax(-1))
        y = torch.cat(feats, -1)
        for hw in self.highways:
            y = hw(y)
        return self.out(y)


class CharWordEmbedding(nn.Module):
    """ids -> composed word vectors (+ a full embedding for ids < n_full); see the module docs."""

    def __init__(self, vocab_size: int, n_embd: int, n_full: int = 0, max_filters: int = 100):
        super().__init__()
        self.vocab_size, self.n_full = vocab_size, min(n_full, vocab_size)
        self.cnn = CharCNN(n_embd, max_filters=max_filters)
        self.full = nn.Embedding(self.n_full, n_embd) if self.n_full else None
        if self.full is not None:
            nn.init.uniform_(self.full.weight, -0.1, 0.1)
        # the spelling of every id, saved with the weights (set from the tokenizer)
        self.register_buffer("spellings", torch.zeros(vocab_size, MAX_LEN + 3, dtype=torch.long))
        self._extra: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:  # dtype and device, as nn.Embedding's callers expect
        return self.cnn.chars.weight

    def set_spellings(self, words: Sequence[str | None], specials: Sequence[bool]) -> None:
        if len(words) != self.vocab_size:
            raise ValueError(f"{len(words)} spellings for a vocabulary of {self.vocab_size}")
        self.spellings.copy_(spell_batch(words, specials).to(self.spellings.device))

    @contextlib.contextmanager
    def open_vocabulary(self, words: Sequence[str]) -> Iterator[list[int]]:
        """Within the block, id ``vocab_size + j`` is ``words[j]`` spelt out; yields those ids."""
        old = self._extra
        self._extra = spell_batch(list(words)).to(self.spellings.device)
        try:
            yield [self.vocab_size + j for j in range(len(words))]
        finally:
            self._extra = old

    def _spellings_of(self, ids: torch.Tensor) -> torch.Tensor:
        inside = ids < self.vocab_size
        if bool(inside.all()):
            return self.spellings[ids]
        if self._extra is None:
            raise IndexError(f"token id {int(ids.max())} is outside the vocabulary of "
                             f"{self.vocab_size} (use open_vocabulary for new words)")
        extra = self._extra[(ids - self.vocab_size).clamp(0, len(self._extra) - 1)]
        return torch.where(inside[:, None], self.spellings[ids.clamp(max=self.vocab_size - 1)],
                           extra)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        flat = idx.reshape(-1)
        uniq, inv = torch.unique(flat, return_inverse=True)
        vec = self.cnn(self._spellings_of(uniq))
        if self.full is not None:
            known = uniq < self.n_full
            vec = vec + self.full(uniq.clamp(max=self.n_full - 1)) * known[:, None].to(vec.dtype)
        return vec[inv].reshape(*idx.shape, -1)

    def table(self, chunk: int = 4096) -> torch.Tensor:
        """The (vocab_size, n_embd) matrix of every id's vector."""
        ids = torch.arange(self.vocab_size, device=self.spellings.device)
        return torch.cat([self(ids[i:i + chunk]) for i in range(0, self.vocab_size, chunk)])


__all__ = ["CharCNN", "CharWordEmbedding", "Highway", "spell", "spell_batch"]

"""BPE merge learning and application: the pure-Python reference, and the compiled core's door.

Learning follows Sennrich et al. (2016): count adjacent symbol pairs over word types (weighted by
word frequency), merge the most frequent pair everywhere, repeat.

Tie rule: among pairs with the same count, the winner is the pair that occurs *first in the
corpus*: word types are ordered by their first appearance, and within a word, left to right (by
the position of the pair's left symbol). This is what Sennrich et al.'s reference script does
when its dict iterates in insertion order, and it gives the lecture's merge order on its toy
corpus, e.g. (n, e) before (e, w) at count 8 because ``newer`` spells ``n e`` before ``e w``.
(Lexicographic tie-breaking, as Hugging Face's trainer uses, would pick (e, w) first.)

A merge whose concatenated spelling already exists reuses that id, so spellings stay unique.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

try:  # the compiled core is optional: without it everything runs (slowly) in Python
    from chainrule import _bpe_core as core
except ImportError:  # pragma: no cover - exercised only where the extension did not build
    core = None


def learn_merges_reference(
    words: Sequence[Sequence[int]],
    counts: Sequence[int],
    spellings: dict[int, bytes],
    num_new: int,
    min_count: int = 2,
) -> list[tuple[int, int, int]]:
    """Learn merges by recounting every pair each round (slow, obviously correct).

    Args:
        words: symbol ids of each word type, in order of first appearance.
        counts: frequency of each word type.
        spellings: id -> spelling (bytes) of every base symbol; extended in place.
        num_new: stop after this many *new* vocabulary entries.
        min_count: stop when the best pair occurs fewer times than this.

    Returns:
        ``(left, right, merged)`` id triples in learned order.

    Example: words ``[[l, o, w, _]] * 5`` etc. -> first merge ``(e, r)`` on the lecture corpus.
    """
    words = [list(w) for w in words]
    by_spelling = {s: i for i, s in spellings.items()}
    next_id = max(spellings) + 1
    merges: list[tuple[int, int, int]] = []
    added = 0
    while added < num_new:
        stats: dict[tuple[int, int], int] = {}
        for w, c in zip(words, counts):
            for pair in itertools.pairwise(w):
                stats[pair] = stats.get(pair, 0) + c
        if not stats:
            break
        best = max(stats, key=stats.__getitem__)  # max() keeps the first of equal counts
        if stats[best] < min_count:
            break
        a, b = best
        spelling = spellings[a] + spellings[b]
        new = by_spelling.get(spelling)
        if new is None:
            new, next_id, added = next_id, next_id + 1, added + 1
            spellings[new] = spelling
            by_spelling[spelling] = new
        merges.append((a, b, new))
        for k, w in enumerate(words):
            words[k] = merge_pair(w, a, b, new)
    return merges


def merge_pair(symbols: list[int], a: int, b: int, new: int) -> list[int]:
    """Replace every non-overlapping ``(a, b)``, left to right, by ``new``.

    Example: ``symbols=[1, 2, 3, 1, 2], a=1, b=2, new=4 -> [4, 3, 4]``.
    """
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == a and symbols[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def apply_merges(symbols: list[int], ranks: dict[tuple[int, int], tuple[int, int]]) -> list[int]:
    """Encode one word: repeatedly merge the adjacent pair of lowest rank (earliest learned).

    Args:
        ranks: ``(left, right) -> (rank, merged_id)``.

    Example: ranks ``{(1, 2): (0, 5), (5, 3): (1, 6)}``, symbols ``[1, 2, 3] -> [6]``.
    """
    while len(symbols) > 1:
        best = None
        for pair in itertools.pairwise(symbols):
            r = ranks.get(pair)
            if r is not None and (best is None or r[0] < best[0]):
                best = (r[0], pair, r[1])
        if best is None:
            break
        _, (a, b), new = best
        symbols = merge_pair(symbols, a, b, new)
    return symbols


def get_core():
    """The compiled core with its Unicode tables installed, or ``None`` if it is not built."""
    if core is not None and not core.classes_ready():
        from chainrule.tokenizers._pretok import python_whitespace, unicode_classes

        c = unicode_classes()
        core.set_classes(c["letter"], c["number"], c["space"], python_whitespace())
    return core

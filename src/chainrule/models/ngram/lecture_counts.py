"""n-gram counts and estimates with plain dictionaries, as one would write them on a slide.

The readable reference for :mod:`.counting` and :mod:`.estimate`, which do the same with sorted
numpy arrays and no Python loop over n-grams. ``tests/test_lecture_reference.py`` checks that
the counts here equal a fitted :class:`~.model.NgramModel`'s exactly and that the probabilities
equal its ``logprobs`` for every context and word.

Tokens are any hashable values (words or ids). A sentence ``w1 ... wn`` is framed as
``<s> w1 ... wn </s>``; the model predicts every token after ``<s>``, so ``</s>`` is counted
once per sentence and ``<s>`` is never predicted. The lecture's estimates:

* Markov assumption: P(w_i | w_1 ... w_{i-1}) ~ P(w_i | w_{i-n+1} ... w_{i-1}) = P(w | h);
* maximum likelihood: P(w | h) = c(h w) / c(h), with c(h) = sum_w' c(h w');
* add-k: P(w | h) = (c(h w) + k) / (c(h) + k |V|);
* interpolated Kneser-Ney (Chen & Goodman 1998, in KenLM's form; see :class:`KneserNey`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

BOS, EOS = "<s>", "</s>"

Ngram = tuple[Hashable, ...]


# -- counting ------------------------------------------------------------------------------------
def count_ngrams(
    sentences: Iterable[Sequence[Hashable]], order: int, bos: Hashable = BOS, eos: Hashable = EOS
) -> Counter[Ngram]:
    """c(w_1 .. w_n) of the windows of ``order`` tokens, one ending at each predicted token.

    Each sentence is padded with ``order - 1`` copies of ``<s>`` in front and one ``</s>`` at
    the end: for order 3 the sentence "a b" gives ``(<s>, <s>, a)``, ``(<s>, a, b)`` and
    ``(a, b, </s>)``. These are the windows the fast path counts
    (:func:`chainrule.models.ngram.counting.count_ngrams`).
    """
    counts: Counter[Ngram] = Counter()
    for sentence in sentences:
        padded = [bos] * (order - 1) + list(sentence) + [eos]
        for end in range(order - 1, len(padded)):
            counts[tuple(padded[end - order + 1 : end + 1])] += 1
    return counts


def count_all_orders(
    sentences: Iterable[Sequence[Hashable]], order: int, bos: Hashable = BOS, eos: Hashable = EOS
) -> dict[int, Counter[Ngram]]:
    """``{k: c(k-gram)}`` for k = 1 .. order: every k-gram of ``<s> w1 ... wn </s>``.

    Only one ``<s>`` pads each sentence here, so no n-gram holds ``<s> <s>``, and the unigram
    ``<s>`` is not counted (nothing predicts it): the n-grams and raw counts that a fitted
    :class:`~.model.NgramModel` stores in ``tables.raw_counts``.
    """
    counts: dict[int, Counter[Ngram]] = {k: Counter() for k in range(1, order + 1)}
    for sentence in sentences:
        padded = [bos, *sentence, eos]
        for end in range(1, len(padded)):  # every predicted token
            for k in range(1, min(order, end + 1) + 1):
                counts[k][tuple(padded[end - k + 1 : end + 1])] += 1
    return counts


def by_context(counts: dict[int, Counter[Ngram]]) -> dict[Ngram, dict[Hashable, int]]:
    """c[h][w] = c(h w): the counts of every order grouped by their context h.

    Each c[h] is one row of the lecture's bigram count table (``()`` is the unigrams' context).
    """
    c: dict[Ngram, dict[Hashable, int]] = {}
    for counter in counts.values():
        for ngram, n in counter.items():
            c.setdefault(ngram[:-1], {})[ngram[-1]] = n
    return c


def _last(context: Sequence[Hashable], n: int) -> Ngram:
    """The last n tokens of ``context`` (all of it if shorter): the Markov assumption."""
    context = tuple(context)
    return context[len(context) - n :] if len(context) > n else context


def _suffix_in(h: Ngram, seen: dict) -> Ngram:
    """The longest suffix of the context h that was seen as a context (``()`` at worst)."""
    while h and h not in seen:
        h = h[1:]
    return h


# -- maximum likelihood and add-k ----------------------------------------------------------------
class MLE:
    """P(w | h) = c(h w) / c(h), the lecture's bigram count table divided by its row sums.

    c(h) = sum_w c(h w) counts how often h is followed by something. A context never seen
    (c(h) = 0) has no estimate; like the fast path's backoff model, its longest seen suffix is
    used instead. A word never seen after a seen context gets probability 0.
    """

    def __init__(self, counts: dict[int, Counter[Ngram]]):
        self.order = max(counts)
        self.c = by_context(counts)  # c[h][w] = c(h w)
        self.c_h = {h: sum(row.values()) for h, row in self.c.items()}  # c(h)

    def prob(self, context: Sequence[Hashable], w: Hashable) -> float:
        """P(w | context), from the last n-1 tokens of ``context``."""
        h = _suffix_in(_last(context, self.order - 1), self.c)
        return self.c[h].get(w, 0) / self.c_h[h]

    def distribution(self, context: Sequence[Hashable]) -> dict[Hashable, float]:
        """{w: P(w | context)} for the words seen after the context (every other word: 0)."""
        h = _suffix_in(_last(context, self.order - 1), self.c)
        return {w: c_hw / self.c_h[h] for w, c_hw in self.c[h].items()}


class AddK:
    """Add-k (k = 1: Laplace): P(w | h) = (c(h w) + k) / (c(h) + k |V|).

    ``vocab`` is every token that can be predicted (everything but ``<s>``). The fast path's
    ``addk`` model is a backoff model: it uses this formula for every unigram and for every
    n-gram h w seen in training, but gives a word never seen after a seen context h the
    left-over mass in proportion to P(w | h[1:]) (Katz) rather than k / (c(h) + k |V|), so that
    an n-gram model of order > 1 still sums to one; only seen n-grams can agree.
    """

    def __init__(self, counts: dict[int, Counter[Ngram]], vocab: Iterable[Hashable], k: float):
        self.order, self.k, self.V = max(counts), k, len(set(vocab))
        self.c = by_context(counts)
        self.c_h = {h: sum(row.values()) for h, row in self.c.items()}

    def prob(self, context: Sequence[Hashable], w: Hashable) -> float:
        """P(w | context), from the last n-1 tokens of ``context``."""
        h = _suffix_in(_last(context, self.order - 1), self.c)
        return (self.c[h].get(w, 0) + self.k) / (self.c_h[h] + self.k * self.V)


# -- Kneser-Ney ----------------------------------------------------------------------------------
def mkn_discounts(n: Sequence[int]) -> tuple[float, float, float]:
    """Chen & Goodman's discounts from the counts of counts n1..n4 (eq. 26).

    Y = n1 / (n1 + 2 n2);  D1 = 1 - 2Y n2/n1;  D2 = 2 - 3Y n3/n2;  D3+ = 3 - 4Y n4/n3.
    """
    n1, n2, n3, n4 = n
    if 0 in (n1, n2, n3):
        raise ValueError(f"counts of counts {list(n)} cannot give discounts; pass discounts=")
    Y = n1 / (n1 + 2 * n2)
    D = (1 - 2 * Y * n2 / n1, 2 - 3 * Y * n3 / n2, 3 - 4 * Y * n4 / n3)
    if not all(0 <= d <= j for j, d in enumerate(D, 1)):
        raise ValueError(f"counts of counts {list(n)} give discounts {D}; pass discounts=")
    return D


class KneserNey:
    """Interpolated (modified) Kneser-Ney, as KenLM's ``lmplz`` estimates it, with dicts.

    For a word w after a context h = w_{i-k+1} .. w_{i-1} (an n-gram of order k)::

        P(w | h) = (a(h w) - D_k(a(h w))) / sum_w' a(h w')  +  gamma(h) P(w | h[1:])
        gamma(h) = sum_w' D_k(a(h w')) / sum_w' a(h w')
        P(w | ()) = (a(w) - D_1(a(w))) / sum_w' a(w')  +  gamma(()) / |V|

    with a(h w) = 0 (and D(0) = 0) for an n-gram never seen. The counts a are *adjusted*:
    the raw count c at the highest order, and below it the continuation count
    N1+(. h w) = |{v : c(v h w) > 0}|, how many different words precede h w (which is what
    makes "Francisco" a rare unigram although "San Francisco" is common). An n-gram starting
    with ``<s>`` has nothing before it and keeps its raw count.

    Modified KN subtracts D1, D2 or D3+ for a = 1, 2 or >= 3; plain KN one D per order.
    Without ``discounts`` they are estimated per order from the counts of counts n_j of the
    adjusted counts (:func:`mkn_discounts`; plain KN's D = Y = n1 / (n1 + 2 n2)). A context
    never seen uses its longest seen suffix. The fast path stores log10 probabilities in
    float32 and estimates discounts in float32 as ``lmplz`` does; here everything is float64,
    which moves log-probabilities by less than 1e-6.

    Args:
        counts: :func:`count_all_orders` of the training sentences.
        vocab: every token that can be predicted: the corpus' words, ``</s>``, and any word the
            corpus lacks (``<unk>``), but not ``<s>``. The lowest order interpolates with the
            uniform 1 / |V|.
        discounts: per order 1..n, (D1, D2, D3+) (modified) or (D,) (plain).
        modified: modified KN (three discounts) or plain interpolated KN (one).
        bos: the ``<s>`` token.
    """

    def __init__(
        self,
        counts: dict[int, Counter[Ngram]],
        vocab: Iterable[Hashable],
        discounts: Sequence[Sequence[float]] | None = None,
        modified: bool = True,
        bos: Hashable = BOS,
    ):
        self.order, self.bos = max(counts), bos
        self.vocab = [w for w in dict.fromkeys(vocab) if w != bos]
        N = self.order
        # continuation counts N1+(. g): every (k+1)-gram v g adds one to g
        continuation = Counter(g[1:] for k in range(2, N + 1) for g in counts[k])
        self.a: dict[Ngram, dict[Hashable, int]] = {}  # a[h][w], the adjusted counts
        for k in range(1, N + 1):
            for g, c in counts[k].items():
                h, w = g[:-1], g[-1]
                adjusted = c if k == N or g[0] == bos else continuation[g]
                self.a.setdefault(h, {})[w] = adjusted
        self.D = {k: self._discounts(k, discounts, modified) for k in range(1, N + 1)}
        self.total = {h: sum(a_h.values()) for h, a_h in self.a.items()}  # sum_w a(h w)
        self.gamma = {
            h: sum(self.discount(len(h) + 1, a) for a in a_h.values()) / self.total[h]
            for h, a_h in self.a.items()
        }
        self._cache: dict[Ngram, dict[Hashable, float]] = {}

    def _discounts(self, k, given, modified) -> tuple[float, float, float]:
        if given is not None:
            d = tuple(float(x) for x in given[k - 1])
            return d * 3 if len(d) == 1 else d
        n = Counter(a for h, a_h in self.a.items() if len(h) == k - 1 for a in a_h.values())
        if modified:
            return mkn_discounts([n[1], n[2], n[3], n[4]])
        if 0 in (n[1], n[2]):
            raise ValueError(f"counts of counts n1={n[1]}, n2={n[2]} give no discount for "
                             f"{k}-grams; pass discounts=")
        return (n[1] / (n[1] + 2 * n[2]),) * 3

    def discount(self, k: int, a: int) -> float:
        """D_k(a): order k's D1, D2 or D3+ for an adjusted count a = 1, 2, >= 3 (0 if a = 0)."""
        return 0.0 if a == 0 else self.D[k][min(a, 3) - 1]

    def prob(self, context: Sequence[Hashable], w: Hashable) -> float:
        """P(w | context), from the last n-1 tokens of ``context``."""
        return self.distribution(context).get(w, 0.0)

    def distribution(self, context: Sequence[Hashable]) -> dict[Hashable, float]:
        """{w: P(w | context)} for every w of the vocabulary (computed once per context)."""
        h = _suffix_in(_last(context, self.order - 1), self.a)
        if h not in self._cache:
            if h:
                lower = self.distribution(h[1:])
            else:
                lower = dict.fromkeys(self.vocab, 1 / len(self.vocab))
            k = len(h) + 1
            p = {w: self.gamma[h] * lower[w] for w in self.vocab}
            for w, a in self.a[h].items():
                p[w] += (a - self.discount(k, a)) / self.total[h]
            self._cache[h] = p
        return self._cache[h]


__all__ = [
    "BOS",
    "EOS",
    "MLE",
    "AddK",
    "KneserNey",
    "by_context",
    "count_all_orders",
    "count_ngrams",
    "mkn_discounts",
]

"""Translating with a model and scoring translations: argmax_y P(y | x), BLEU and chrF.

* :func:`translate` decodes with the decoding package (greedy, sampling, beam search with
  length normalisation) -- an encoder-decoder given each sentence as its source, or a
  decoder-only model given each sentence inside a prompt template
  (``"German: {source}\\nEnglish:"``), its output cut at the first line break.
* :func:`corpus_scores` is sacreBLEU's corpus BLEU (13a tokenisation, case-sensitive, on
  detokenised text) and chrF, with their signatures; sacreBLEU is the standard and is not
  re-implemented (``pip install 'chainrule[mt]'``).
* :func:`plot_source_attention` draws the source x target attention of one sentence (one
  heatmap per layer and head) -- the picture of Bahdanau et al. (2015).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainrule.errors import ConfigError

if TYPE_CHECKING:  # scoring a hypothesis file (eval bleu --hypotheses) needs no torch
    import torch

log = logging.getLogger(__name__)


@dataclass
class Translator:
    """A model with its tokenizers. ``template`` (decoder-only models) holds ``{source}``."""

    model: Any
    tokenizer: Any
    source_tokenizer: Any = None
    template: str | None = None

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str | torch.device = "cpu",
             template: str | None = None) -> Translator:
        from chainrule.evaluation.textscore import load_model_and_tokenizer, load_source_tokenizer

        model, tok = load_model_and_tokenizer(directory)
        model = model.to(device) if hasattr(model, "to") else model
        src = load_source_tokenizer(directory, tok) if model.conditional else None
        return cls(model, tok, src, template)

    def check(self) -> None:
        """Refuse a model that cannot translate as configured, in one sentence."""
        from chainrule.models.base import require_generator

        require_generator(self.model, "translation")
        if self.model.conditional:
            if self.template is not None:
                raise ConfigError(f"a {self.model.family} model reads the source itself; drop "
                                  "--template (it is for decoder-only models).")
            return
        if not self.template:
            raise ConfigError(f"a {self.model.family} model is decoder-only: it translates only "
                              "inside a prompt, so pass --template with {source} in it, e.g. "
                              "--template 'German: {source}\\nEnglish:'.")
        if "{source}" not in self.template:
            raise ConfigError("the prompt template must contain {source} where the sentence "
                              "goes.")

    def source_ids(self, sentences: Sequence[str], truncate: bool = True) -> list[list[int]]:
        """Encoded sources, cut to the model's ``max_len - 1`` with a warning (or refused)."""
        limit = self.model.cfg.max_len - 1
        out = []
        for i, s in enumerate(sentences):
            if not s.strip():
                raise ConfigError(f"source sentence {i + 1} is empty; every line needs a "
                                  "sentence to translate.")
            ids = list(self.source_tokenizer.encode(s))
            if len(ids) > limit:
                if not truncate:
                    raise ConfigError(f"source sentence {i + 1} has {len(ids)} tokens, more than "
                                      f"the model's maximum of {limit}; shorten it, or drop "
                                      "--no-truncate to cut it.")
                log.warning(f"source sentence {i + 1} has {len(ids)} tokens; cut to the "
                            f"model's maximum of {limit}.")
                ids = ids[:limit]
            out.append(ids)
        return out


def translate(translator: Translator, sentences: Sequence[str], *, strategy: str = "beam",
              beams: int = 5, max_new_tokens: int = 0, length_penalty: float = 1.0,
              batch_size: int = 64, truncate: bool = True, seed: int | None = None,
              **sampling: Any) -> list[Any]:
    """The best output (a :class:`~chainrule.decoding.Completion`) for each sentence.

    Args:
        strategy: ``greedy``, ``sample`` or ``beam``; ``sampling`` passes temperature,
            top_k, top_p, ... to :class:`~chainrule.decoding.GenerationConfig`.
        max_new_tokens: output limit (0: the model's ``max_len - 1`` for an encoder-decoder,
            twice the source's tokens plus 10 for a decoder-only model).
        batch_size: sentences decoded together (beam search holds ``beams`` rows for each).
    """
    from chainrule.decoding import GenerationConfig, generate

    translator.check()
    model, tok = translator.model, translator.tokenizer
    out: list[Any] = []
    for a in range(0, len(sentences), batch_size):
        chunk = list(sentences[a : a + batch_size])
        if model.conditional:
            src = translator.source_ids(chunk, truncate)
            limit = max_new_tokens or model.cfg.max_len - 1
            limit = min(limit, model.cfg.max_len - 1)
            prompts: list[Any] = [[] for _ in chunk]
            stop: tuple[str, ...] = ()
        else:
            src = None
            prompts = [translator.template.format(source=s) for s in chunk]
            limit = max_new_tokens or 2 * max(len(tok.encode(s)) for s in chunk) + 10
            stop = ("\n",)
        cfg = GenerationConfig(strategy=strategy, num_beams=beams, max_new_tokens=limit,
                               length_penalty=length_penalty, seed=seed, stop=stop,
                               truncate=truncate, **sampling)
        results = generate(model, prompts, cfg, tokenizer=tok, sources=src)
        out.extend(r[0] for r in results)
    return out


def hypothesis_text(completion: Any) -> str:
    """The translation as one line (a decoder-only model's output is cut at its line break)."""
    text = completion.text or ""
    return text.split("\n")[0].strip()


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("BLEU and chrF come from sacreBLEU, which is not installed; install "
                          "it with pip install 'chainrule[mt]'.") from None
    return sacrebleu


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacreBLEU's corpus BLEU and chrF of ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise ConfigError(f"{len(hypotheses)} translations for {len(references)} references; "
                          "give one reference per source sentence.")
    sb = _sacrebleu()
    bleu, chrf = sb.metrics.BLEU(), sb.metrics.CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": b.score, "bleu_signature": str(bleu.get_signature()),
            "bleu_detail": str(b), "chrf": c.score,
            "chrf_signature": str(chrf.get_signature()), "sentences": len(hypotheses)}


def attention_maps(translator: Translator, sentence: str, completion: Any):
    """(maps (layers, heads, T, S), source labels, target labels) of one translation: row t is
    the prediction of target token t (the last one: the end), column s source token s."""
    model = translator.model
    if not model.conditional:
        raise ConfigError("--attention draws an encoder-decoder's attention over the source; "
                          f"a {model.family} model has none.")
    import torch

    [src] = translator.source_ids([sentence])
    ids = [model.bos_id, *completion.token_ids]
    maps = model.attention(torch.tensor([ids]), [src])[:, :, 0]  # (L, H, T, S)
    stok, tok = translator.source_tokenizer, translator.tokenizer
    source_labels = [_label(stok, i) for i in src] + ["</s>"]
    target_labels = [_label(tok, i) for i in completion.token_ids] + ["</s>"]
    return maps, source_labels, target_labels


def _label(tokenizer: Any, i: int) -> str:
    """A token as text (byte-level pieces decoded; a space shown as a leading underscore)."""
    text = tokenizer.decode([i])
    return ("_" + text[1:] if text.startswith(" ") else text) or tokenizer.id_to_token(i)


def plot_source_attention(maps: torch.Tensor, source_labels: Sequence[str],
                          target_labels: Sequence[str], path: str | os.PathLike,
                          title: str = "") -> Path:
    """Heatmaps (rows: layers, columns: heads) of ``maps`` (L, H, T, S): target tokens down,
    source tokens across, weights in [0, 1] (:func:`attention_plot.plot_attention`)."""
    from chainrule.evaluation.attention_plot import plot_attention

    return plot_attention(maps, target_labels, path, title, key_labels=source_labels)


__all__ = ["Translator", "attention_maps", "corpus_scores", "hypothesis_text",
           "plot_source_attention", "translate"]

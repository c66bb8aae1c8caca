"""The attention, BPE and ladder views: payloads built from the library's own functions."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch

from chainrule.errors import ConfigError
from chainrule.web.served import DEFAULT_LIMITS, CannotDo, Limits, ServedModel


def attention_view(sm: ServedModel, text: str, *, source: str | None = None,
                   limits: Limits = DEFAULT_LIMITS) -> dict:
    """Every layer x head of every attention group for ``<s> text </s>`` (and its source)."""
    from chainrule.models.attention_capture import attention_groups

    why = sm.can("attention")
    if why:
        raise CannotDo(why)
    model, tok = sm.model, sm.tokenizer
    ids = [model.bos_id, *tok.encode(text), model.eos_id]
    limit = min(limits.max_attention_tokens, int(getattr(model, "max_context", None) or 10**9))
    if len(ids) > limit:
        raise ConfigError(f"the text is {len(ids)} tokens long with <s> and </s>; the attention "
                          f"view shows at most {limit} for {sm.name}; shorten it.")
    src_ids = None
    if getattr(model, "conditional", False):
        if not source:
            raise ConfigError(f"{sm.name} is conditional: give a source sentence for its "
                              "cross-attention.")
        src_ids = list((sm.source_tokenizer or tok).encode(source))
    with sm.lock, torch.no_grad():
        try:
            groups = attention_groups(model, ids, src_ids)
        except ConfigError as e:
            raise CannotDo(str(e)) from None
    stok = sm.source_tokenizer or tok
    labels = {"target": [tok.decode([i]) for i in ids],
              "source": [] if src_ids is None else [stok.decode([i]) for i in src_ids]}
    for g in groups:  # an encoder-decoder may append </s> to the source
        if g.key == "source" and g.weights.shape[-1] == len(labels["source"]) + 1:
            labels["source"].append(tok.decode([model.eos_id]))
            break
    return {
        "model": sm.name,
        "tokens": labels["target"],
        "source_tokens": labels["source"],
        "groups": [{
            "name": g.name, "query": g.query, "key": g.key,
            "layers": int(g.weights.shape[0]), "heads": int(g.weights.shape[1]),
            "rows": labels[g.query] or labels["target"], "cols": labels[g.key] or labels["target"],
            "weights": [[[[round(float(v), 5) for v in row] for row in head] for head in layer]
                        for layer in g.weights.tolist()],
        } for g in groups],
    }


def _spell(word: tuple[str, ...]) -> str:
    return " ".join(word)


def bpe_view(corpus: str, num_merges: int, *, word: str = "", limits: Limits = DEFAULT_LIMITS,
             show_pairs: int = 8, show_types: int = 40) -> dict:
    """The lecture's BPE loop step by step (:func:`chainrule.tokenizers.bpe_lecture.bpe_steps`):
    each merge with its count, the most frequent pairs it was chosen from, and the corpus
    after it; then how ``word`` splits under the merges learned."""
    from chainrule.tokenizers.bpe_lecture import (
        apply_merges,
        bpe_steps,
        count_pairs,
        word_frequencies,
    )

    if not corpus.split():
        raise ConfigError("the corpus is empty; paste some text (words separated by spaces).")
    if "_" in corpus:
        raise ConfigError("the corpus contains '_', which this view uses as the end-of-word "
                          "marker; remove the underscores.")
    start = word_frequencies(corpus)

    def corpus_rows(vocab: dict) -> list:
        return [[_spell(w), f] for w, f in list(vocab.items())[:show_types]]

    def top_pairs(pairs) -> list:
        return [[a, b, c] for (a, b), c in pairs.most_common(show_pairs)]

    steps = [{"merge": list(s.pair), "symbol": "".join(s.pair), "count": s.count,
              "pairs": top_pairs(s.pairs), "corpus": corpus_rows(s.corpus)}
             for s in bpe_steps(corpus, num_merges)]
    alphabet = sorted({c for w in start for c in w})
    merges = [tuple(s["merge"]) for s in steps]
    split = None
    if word.strip():
        w = word.strip().split()[0]
        split = {"word": w, "steps": [_spell(x) for x in apply_merges(w, merges)]}
    return {
        "types": len(start), "tokens": sum(start.values()), "alphabet": alphabet,
        "initial": {"corpus": corpus_rows(start), "pairs": top_pairs(count_pairs(start))},
        "steps": steps, "requested": num_merges,
        "stopped_early": len(steps) < num_merges, "split": split,
    }


def ladder_view(directory: Path | None) -> dict:
    """The table and plot of a ``chainrule ladder`` report directory (fixed at start)."""
    if directory is None:
        raise CannotDo("no ladder report was given; start the server with --ladder "
                       "REPORT_DIR (a directory written by `chainrule ladder` or `demo`).")
    from chainrule.evaluation.ladder_config import RungResult
    from chainrule.evaluation.ladder_report import table_rows

    data = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    known = {f.name for f in fields(RungResult)}
    results = [RungResult(**{k: v for k, v in r.items() if k in known})
               for r in data.get("results", [])]
    rows = table_rows(results)
    report = directory / "report.md"
    return {
        "directory": directory.name,
        "columns": list(rows[0]) if rows else [],
        "rows": rows,
        "results": data.get("results", []),
        "plot": (directory / "ladder.png").is_file(),
        "report": report.read_text(encoding="utf-8") if report.is_file() else "",
    }


def check_ladder_dir(directory: str | None) -> Path | None:
    """The ladder directory given at start, checked once (None when not given)."""
    if not directory:
        return None
    path = Path(directory)
    if not (path / "results.json").is_file():
        raise ConfigError(f"{str(path)!r} has no results.json; pass a report directory written "
                          "by `chainrule ladder` or `chainrule demo`.")
    return path


__all__ = ["attention_view", "bpe_view", "check_ladder_dir", "ladder_view"]

"""Per-line scores of a stream-trained char GPT, framed by ``<s> … </s>`` vs by its newline.

The everyday flow: ``chainrule train --family gpt --preset shakespeare-char-cpu`` (default
``boundaries=none``: one stream) for a few hundred steps on Tiny Shakespeare, then ``chainrule
eval ppl`` on test lines. Before the fix every evaluator framed a line as ``<s> chars </s>``
(tokens the stream model never saw); now a stream model frames it as ``\\n chars \\n``
(evaluation/stream_framing.py). Printed: the old framing's figures (scored here by hand, the
same model) and ``eval ppl``'s (the library path): mean log-prob (nats) of the first character,
of the end token, and test perplexity per token; with ``--lines`` also a ``boundaries=lines``
model of the same shape and steps, scored as ``<s> chars </s>`` (the reference).

    nice -n 10 .venv/bin/python bench/bench_stream_framing.py --iters 400 --lines

Split as bench/bench_gpt_bos.py: the first 90% of the lines train; the non-blank lines after
them are cut in half: validation, then the test lines (1,580).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def _figures(seqs, scores) -> dict:
    import numpy as np

    flat = np.concatenate(scores)
    return {"first": float(np.mean([s[0] for s in scores])),
            "end": float(np.mean([s[-1] for s in scores])),
            "ppl": float(np.exp(-flat.mean())), "tokens": int(flat.size)}


def run(iters: int, seed: int, data: Path, work: Path, lines_too: bool) -> dict:
    import torch

    from chainrule.cli import main
    from chainrule.evaluation.perplexity import perplexity
    from chainrule.evaluation.textscore import frame, load_model_and_tokenizer
    from chainrule.models.scoring import score_sequences

    torch.set_num_threads(1)
    lines = data.read_text().splitlines()
    cut = int(0.9 * len(lines))
    held = [ln for ln in lines[cut:] if ln.strip()]
    (work / "train.txt").write_text("\n".join(lines[:cut]) + "\n")
    (work / "valid.txt").write_text("\n".join(held[: len(held) // 2]) + "\n")
    test = held[len(held) // 2:]
    out: dict = {"iters": iters, "seed": seed, "test_lines": len(test)}
    for bnd in ["none", "lines"] if lines_too else ["none"]:
        d = work / bnd
        t0 = time.process_time()
        assert main(["-q", "--threads", "1", "train", "--family", "gpt", "--preset",
                     "shakespeare-char-cpu", str(work / "train.txt"), "-o", str(d),
                     f"boundaries={bnd}", f"max_iters={iters}", f"lr_decay_iters={iters}",
                     f"eval_interval={iters}", "eval_iters=20", f"seed={seed}",
                     f"val_data={work / 'valid.txt'}", "dtype=float32"]) == 0
        cpu = time.process_time() - t0
        model, tok = load_model_and_tokenizer(d)
        ids = [tok.encode(t) for t in test]
        old = [[model.bos_id, *x, model.eos_id] for x in ids]
        new = [frame(model, x) for x in ids]
        rep = perplexity(model, tok, test)  # what `chainrule eval ppl` reports
        row = {"train_cpu_s": round(cpu, 1), "framed_by": "\\n" if new != old else "<s>",
               "old": _figures(old, score_sequences(model, old)),
               "eval_ppl": rep.perplexity,
               "now": _figures(new, score_sequences(model, new))}
        out[bnd] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--lines", action="store_true", help="also a boundaries=lines model")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = run(a.iters, a.seed, a.data, Path(tmp), a.lines)
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"char GPT (shakespeare-char-cpu shape), {a.iters} steps, seed {a.seed}, "
          f"{res['test_lines']} test lines")
    print(f"{'model / framing':38s} {'first':>7s} {'end':>7s} {'test ppl':>9s} {'CPU s':>6s}")
    for bnd in ("none", "lines"):
        if bnd not in res:
            continue
        r = res[bnd]
        o, n = r["old"], r["now"]
        if r["framed_by"] == "\\n":
            print(f"{'boundaries=' + bnd + ', <s> … </s> (before)':38s} {o['first']:7.2f} "
                  f"{o['end']:7.2f} {o['ppl']:9.2f} {r['train_cpu_s']:6.1f}")
        print(f"{'boundaries=' + bnd + ', eval ppl now (' + r['framed_by'] + ')':38s} "
              f"{n['first']:7.2f} {n['end']:7.2f} {r['eval_ppl']:9.2f}"
              + ("" if r["framed_by"] == "\\n" else f" {r['train_cpu_s']:6.1f}"))


if __name__ == "__main__":
    main()

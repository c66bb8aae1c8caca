"""``eval ppl`` on n-gram models with BPE and character tokenizers: the numpy path against the
general (torch) path it replaced, same run, same model (issue 21).

    nice -n 10 .venv/bin/python bench/bench_ngram_ppl_tokenizers.py --rounds 3

Trains on brown/train.txt a character tokenizer + order-5 mKN model and a BPE tokenizer
(``--bpe-vocab``, default 2000) + order-3 mKN model, then times ``perplexity()`` on
brown/test.txt both ways in alternating rounds: ``score_lines`` (what ``eval ppl`` runs now:
tokenizer.encode per line, flat ids, the compiled kernel) and the general path
(``score_sequences`` through ``token_logprobs``, torch tensors), and checks the two reports are
equal field for field. A fresh interpreter then runs ``chainrule eval ppl`` on both models and
reports whether torch got imported. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bpe-vocab", type=int, default=2000)
    args = ap.parse_args()
    if not (DATA / "train.txt").exists():
        print(f"{DATA} is absent (the shared data); nothing to measure.")
        return 1
    from chainrule.evaluation.perplexity import perplexity
    from chainrule.models.ngram.model import NgramModel
    from chainrule.models.ngram.train import save_ngram, train_ngram
    from chainrule.tokenizers import BPETokenizer, CharTokenizer

    train = (DATA / "train.txt").read_text(encoding="utf-8")
    lines = (DATA / "test.txt").read_text(encoding="utf-8").split("\n")[:-1]
    result: dict = {"load": os.getloadavg(), "test_lines": len(lines), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        made = {
            "char-o5": (CharTokenizer.train([train]), 5),
            f"bpe{args.bpe_vocab}-o3": (BPETokenizer.train([train], vocab_size=args.bpe_vocab), 3),
        }
        dirs = []
        for name, (tok, order) in made.items():
            res = train_ngram(DATA / "train.txt", order=order, smoothing="mkn", tokenizer=tok)
            save_ngram(res.model, res.tokenizer, Path(tmp) / name)
            dirs.append(str(Path(tmp) / name))
            fast_s, general_s = [], []
            original, original_ids = NgramModel.score_lines, NgramModel.score_ids
            for r in range(args.rounds):
                for way in (("numpy", "general") if r % 2 == 0 else ("general", "numpy")):
                    if way == "general":  # score_ids too: score_sequences would take numpy
                        NgramModel.score_lines = lambda self, t, x: None
                        NgramModel.score_ids = None
                    t0 = time.process_time()
                    report = perplexity(res.model, res.tokenizer, lines)
                    dt = time.process_time() - t0
                    NgramModel.score_lines, NgramModel.score_ids = original, original_ids
                    (general_s if way == "general" else fast_s).append(dt)
                    if way == "general":
                        general = report
                    else:
                        fast = report
            result["models"][name] = {
                "tokens": fast.tokens, "perplexity": fast.perplexity,
                "identical_reports": fast == general,
                "numpy_cpu_s": statistics.median(fast_s),
                "general_cpu_s": statistics.median(general_s),
                "numpy/general per round": [round(a / b, 3) for a, b in zip(fast_s, general_s)],
            }
        code = ("import json, sys; from chainrule.cli import main; "
                f"c = main(['eval', 'ppl', *{dirs!r}, '--data', {str(DATA / 'test.txt')!r}, "
                "'--json']); print(json.dumps({'code': c, 'torch': 'torch' in sys.modules}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        result["eval_ppl_subprocess"] = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

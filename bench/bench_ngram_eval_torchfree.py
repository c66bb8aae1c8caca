"""``eval surprisal`` and ``eval pairs`` on n-gram models without torch: the numpy path
(``NgramModel.score_ids`` / ``score_ids_with_mass``) against the torch path it replaced, same
run, same models (issue 21).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_ngram_eval_torchfree.py \\
        --rounds 3 --head /path/to/a/copy/of/HEAD/src

Trains on brown/train.txt a character tokenizer + order-5 mKN model, a BPE tokenizer
(``--bpe-vocab``, default 2000) + order-3 mKN model and a whitespace word + order-3 mKN model.
Part 1, in one process, CPU seconds (medians of alternated rounds, after one warm-up call of
each path): the surprisal table of the first ``--stimuli`` Brown test lines, per token and per
word (the character model's word rows carry the word-boundary correction), and BLiMP-dev pairs
(``--pairs-files`` of the 12 files) by the full and the one-prefix method; each with the hooks
(numpy) and without (the torch path), and the largest difference between the two outputs.
Part 2, fresh processes: ``chainrule eval surprisal --words`` on ten stimuli with the character
model, wall and CPU time of the whole process (start-up, loading, scoring, writing), now, with
the hooks removed (torch path), and with ``--head`` (a source tree of the code before, compiled
modules copied in) when given; and whether torch got imported. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


_HOOKS = ("score_ids", "score_ids_with_mass")


def _use(torch_path: bool, _saved: dict = {}) -> None:  # noqa: B006 -- saved once
    """Take the torch path (the n-gram model's numpy hooks removed) or the numpy path."""
    from chainrule.models.ngram.model import NgramModel

    if not _saved:
        _saved.update({n: NgramModel.__dict__[n] for n in _HOOKS})
    for n in _HOOKS:
        setattr(NgramModel, n, None if torch_path else _saved[n])


def _ops(model, tok, stimuli, pairs):
    from chainrule.evaluation.pairs import score_pairs
    from chainrule.evaluation.surprisal_table import surprisal_table

    def table(words):
        t = surprisal_table([("m", model, tok)], stimuli, words=words, allow_unk=True)
        return [r["surprisal_bits"] for r in t.rows]

    def pair(method):
        s = score_pairs(model, tok, pairs, method=method, allow_unk=True)
        return s.logp_good + s.logp_bad

    return {"surprisal tokens": lambda: table(False), "surprisal words": lambda: table(True),
            "pairs full": lambda: pair("full"), "pairs prefix": lambda: pair("prefix")}


def _in_process(models, stimuli, pairs, rounds: int) -> dict:
    out = {}
    for name, (model, tok) in models.items():
        for op, fn in _ops(model, tok, stimuli, pairs).items():
            res, times = {}, {"numpy": [], "torch": []}
            for way in ("numpy", "torch"):  # warm-up: torch's import, the compiled index
                _use(way == "torch")
                res[way] = fn()
            for r in range(rounds):
                for way in (("numpy", "torch") if r % 2 == 0 else ("torch", "numpy")):
                    _use(way == "torch")
                    t0 = time.process_time()
                    fn()
                    times[way].append(time.process_time() - t0)
            _use(False)
            a, b = res["numpy"], res["torch"]
            diff = max((abs(x - y) for x, y in zip(a, b) if x != y), default=0.0)
            out[f"{name} / {op}"] = {
                "values": len(a), "identical": a == b, "max_abs_diff": diff,
                "numpy_cpu_s": round(statistics.median(times["numpy"]), 4),
                "torch_cpu_s": round(statistics.median(times["torch"]), 4),
                "numpy/torch per round": [round(x / y, 3) for x, y in
                                          zip(times["numpy"], times["torch"])],
            }
            print(name, op, out[f"{name} / {op}"], file=sys.stderr)
    return out


def _fresh(argv: list[str], *, torch_path: bool, pythonpath: str | None) -> dict:
    code = ("import json, sys\n"
            "from chainrule.cli import main\n"
            + ("from chainrule.models.ngram.model import NgramModel\n"
               "NgramModel.score_ids = NgramModel.score_ids_with_mass = None\n"
               if torch_path else "")
            + f"c = main({argv!r})\n"
            "print(json.dumps({'code': c, 'torch': 'torch' in sys.modules}))\n")
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, **json.loads(res.stdout.strip().splitlines()[-1])}


def _startup(model_dir: Path, tmp: Path, runs: int, head: str | None) -> dict:
    stim = tmp / "ten.txt"
    lines = (DATA / "brown" / "test.txt").read_text(encoding="utf-8").split("\n")[:10]
    stim.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["eval", "surprisal", str(model_dir), "--data", str(stim), "--words", "--unk",
            "score", "-o", str(tmp / "out.jsonl")]
    ways = {"numpy (now)": (False, None), "torch path (hooks removed)": (True, None)}
    if head:
        ways["before (HEAD tree)"] = (False, head)
    got: dict[str, list[dict]] = {w: [] for w in ways}
    for r in range(runs):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for w in order:
            got[w].append(_fresh(argv, torch_path=ways[w][0], pythonpath=ways[w][1]))
    out = {}
    for w, rows in got.items():
        out[w] = {"wall_s": round(statistics.median(r["wall"] for r in rows), 3),
                  "cpu_s": round(statistics.median(r["cpu"] for r in rows), 3),
                  "codes": sorted({r["code"] for r in rows}),
                  "torch_imported": sorted({r["torch"] for r in rows})}
    base = out["numpy (now)"]
    for row in out.values():
        row["cpu / now"] = round(row["cpu_s"] / base["cpu_s"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bpe-vocab", type=int, default=2000)
    ap.add_argument("--stimuli", type=int, default=2000, help="Brown test lines for surprisal")
    ap.add_argument("--pairs-files", type=int, default=3, help="BLiMP-dev files (1,000 pairs each)")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--head", help="a src/ tree of the code before (PYTHONPATH for part 2)")
    args = ap.parse_args()
    if not (DATA / "brown" / "train.txt").exists():
        print(f"{DATA} is absent (the shared data); nothing to measure.")
        return 1
    from chainrule.evaluation.pairs import read_pairs
    from chainrule.evaluation.stimuli import Stimulus
    from chainrule.models.ngram.train import save_ngram, train_ngram
    from chainrule.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

    train_path = DATA / "brown" / "train.txt"
    train = train_path.read_text(encoding="utf-8")
    test = (DATA / "brown" / "test.txt").read_text(encoding="utf-8").split("\n")[:args.stimuli]
    stimuli = [Stimulus(t) for t in test if t.strip()]
    pairs = read_pairs(sorted((DATA / "blimp-dev").glob("*.jsonl"))[:args.pairs_files])
    result: dict = {"load_before": os.getloadavg(), "stimuli": len(stimuli),
                    "pairs": len(pairs)}
    with tempfile.TemporaryDirectory() as tmp:
        made = {
            "char-o5": (CharTokenizer.train([train]), 5),
            f"bpe{args.bpe_vocab}-o3": (BPETokenizer.train([train], vocab_size=args.bpe_vocab), 3),
            "word-o3": (WordTokenizer.train([train]), 3),
        }
        models = {}
        for name, (tok, order) in made.items():
            res = train_ngram(train_path, order=order, smoothing="mkn", tokenizer=tok)
            save_ngram(res.model, res.tokenizer, Path(tmp) / name)
            models[name] = (res.model, res.tokenizer)
        result["in_process"] = _in_process(models, stimuli, pairs, args.rounds)
        result["load_mid"] = os.getloadavg()
        result["startup_eval_surprisal_char_o5"] = _startup(Path(tmp) / "char-o5", Path(tmp),
                                                            args.startup_runs, args.head)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

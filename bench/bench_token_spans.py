"""Token spans bench (issue 21): ``chainrule eval surprisal`` with the tokenizers' linear
``decode_with_offsets`` against the old quadratic prefix decoding, in the same run.

"old" removes ``decode_with_offsets`` from the tokenizer classes for the duration of a run, so
``token_spans`` falls back to decoding every prefix (the algorithm before this change, kept as
the fallback for tokenizers without the method); "new" is the code as it is. The two runs
alternate, ``--repeats`` times each, and the report gives CPU-second medians and their ratio.
The two tables must be byte-identical. The models are small n-grams on Brown train, e.g.:

    chainrule tokenizer train --kind char -o char.json brown/train.txt
    chainrule train brown/train.txt --family ngram --tokenizer char.json --order 5 -o char5
    chainrule tokenizer train --kind bpe --vocab-size 2000 -o bpe.json brown/train.txt
    chainrule train brown/train.txt --family ngram --tokenizer bpe.json --order 4 -o bpe4

Run by hand (never from tests):

    nice -n 10 .venv/bin/python bench/bench_token_spans.py char5 bpe4 --words --repeats 3
    nice -n 10 .venv/bin/python bench/bench_token_spans.py char5 bpe4 --spans-only
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import statistics
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@contextlib.contextmanager
def old_spans():
    """token_spans without ``decode_with_offsets``: the quadratic prefix decoding."""
    from chainrule.tokenizers import BPETokenizer, ByteBPETokenizer, CharTokenizer, WordTokenizer

    saved = {c: c.__dict__["decode_with_offsets"]
             for c in (BPETokenizer, ByteBPETokenizer, CharTokenizer, WordTokenizer)}
    for c in saved:
        delattr(c, "decode_with_offsets")
    try:
        yield
    finally:
        for c, f in saved.items():
            c.decode_with_offsets = f


def run_once(model: str, data: Path, out: Path, words: bool) -> float:
    from chainrule.cli import main

    argv = ["--threads", "1", "-q", "eval", "surprisal", model, "--data", str(data),
            "-o", str(out), "--unk", "score", *(["--words"] if words else [])]
    t0 = time.process_time()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        rc = main(argv)
    if rc:
        raise SystemExit(f"eval surprisal failed on {model} (exit {rc})")
    return time.process_time() - t0


def spans_only(model: str, lines: list[str], repeats: int) -> None:
    """token_spans alone on every line: the old algorithm (called directly) against the new."""
    from chainrule.evaluation import textscore
    from chainrule.tokenizers import load_tokenizer

    tok = load_tokenizer(model)
    ids = [tok.encode(t) for t in lines]

    def old(t, x):
        if tok.decode(x) == t:
            return textscore._spans_by_prefix(tok, t, x)
        return textscore._spans_by_search(tok, t, x)

    times: dict[str, list[float]] = {"old": [], "new": []}
    outs = {}
    for _ in range(repeats):
        for which, f in (("old", old), ("new", lambda t, x: textscore.token_spans(tok, t, x))):
            t0 = time.process_time()
            outs[which] = [f(t, x) for t, x in zip(lines, ids)]
            times[which].append(time.process_time() - t0)
    o, n = (statistics.median(times[k]) for k in ("old", "new"))
    print(f"{Path(model).name} ({tok.kind}, {sum(map(len, ids))} tokens): token_spans old "
          f"{o:.2f} CPU s, new {n:.3f} CPU s, {o / n:.1f}x, identical: "
          f"{outs['old'] == outs['new']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="model directories")
    ap.add_argument("--data", type=Path, default=SHARED / "brown" / "test.txt")
    ap.add_argument("--n", type=int, default=0, help="first N sentences only (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--words", action="store_true", help="word rows (default: token rows)")
    ap.add_argument("--spans-only", action="store_true",
                    help="time token_spans alone (no scoring, no table)")
    args = ap.parse_args()
    if args.spans_only:
        lines = [t.strip() for t in args.data.read_text(encoding="utf-8").splitlines()
                 if t.strip()][: args.n or None]
        for model in args.models:
            spans_only(model, lines, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.n:
            data = Path(tmp) / "data.txt"
            lines = args.data.read_text(encoding="utf-8").splitlines()[: args.n]
            data.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for model in args.models:
            times: dict[str, list[float]] = {"old": [], "new": []}
            outs = {k: Path(tmp) / f"{k}.csv" for k in times}
            run_once(model, data, outs["new"], args.words)  # warm-up (loading, caches)
            for r in range(args.repeats):
                for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    with old_spans() if which == "old" else contextlib.nullcontext():
                        times[which].append(run_once(model, data, outs[which], args.words))
            same = filecmp.cmp(outs["old"], outs["new"], shallow=False)
            old, new = (statistics.median(times[k]) for k in ("old", "new"))
            print(f"{Path(model).name}: old {old:.2f} CPU s, new {new:.2f} CPU s, "
                  f"speed-up {old / new:.2f}x, tables identical: {same}  "
                  f"(old {[round(t, 2) for t in times['old']]}, "
                  f"new {[round(t, 2) for t in times['new']]})", flush=True)


if __name__ == "__main__":
    main()

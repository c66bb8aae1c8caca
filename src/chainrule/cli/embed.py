"""CLI: ``chainrule embed train | extract | neighbours | analogy | eval | plot``."""

from __future__ import annotations

import argparse

METHODS = ("ppmi-svd", "sgns", "cbow")


def register(sub) -> None:
    p = sub.add_parser("embed", help="word vectors: train (PPMI-SVD, word2vec), extract from a "
                                     "model, neighbours, analogies, benchmarks, plots")
    em = p.add_subparsers(dest="embed_command", metavar="WHAT")

    t = em.add_parser("train", help="train word vectors on a corpus (one sentence per line)")
    t.add_argument("corpus", nargs="+", metavar="CORPUS")
    t.add_argument("-o", "--output", required=True, metavar="VECTORS",
                   help=".txt/.vec (word2vec text), .bin (word2vec binary) or .safetensors")
    t.add_argument("--method", choices=METHODS, default="sgns")
    t.add_argument("--dim", type=int, default=100)
    t.add_argument("--window", type=int, default=5)
    t.add_argument("--min-count", type=int, default=5)
    t.add_argument("--lowercase", action="store_true")
    t.add_argument("--epochs", type=int, default=5, help="word2vec passes over the corpus")
    t.add_argument("--negative", type=int, default=5, help="word2vec noise words per pair")
    t.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold (0 = off)")
    t.add_argument("--alpha", type=float, default=None,
                   help="word2vec start learning rate (default 0.025), or PPMI-SVD's context "
                        "smoothing exponent (default 0.75)")
    t.add_argument("--weighting", choices=("none", "harmonic", "linear"), default="none",
                   help="PPMI-SVD: weight of a co-occurrence at distance d")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--backend", choices=("auto", "compiled", "torch"), default="auto")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_train)

    x = em.add_parser("extract", help="word vectors out of a model: its input embeddings, or "
                                      "hidden states averaged over a corpus")
    x.add_argument("model", metavar="MODEL_DIR")
    x.add_argument("-o", "--output", required=True, metavar="VECTORS")
    x.add_argument("--corpus", nargs="+", metavar="F",
                   help="average each word's hidden state over this corpus (contextual vectors)")
    x.add_argument("--layer", type=int, default=-1,
                   help="with --corpus: 0 = embeddings entering the network, -1 = last layer")
    x.add_argument("--min-count", type=int, default=1)
    x.add_argument("--max-sentences", type=int, default=None)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=run_extract)

    n = em.add_parser("neighbours", aliases=["neighbors"], help="nearest words by cosine")
    n.add_argument("vectors", metavar="VECTORS")
    n.add_argument("words", nargs="+", metavar="WORD")
    n.add_argument("-k", type=int, default=10)
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=run_neighbours)

    a = em.add_parser("analogy", help="a is to b as c is to ? (query words excluded)")
    a.add_argument("vectors", metavar="VECTORS")
    a.add_argument("a")
    a.add_argument("b")
    a.add_argument("c")
    a.add_argument("--method", choices=("add", "mul"), default="add",
                   help="3CosAdd (Mikolov et al.) or 3CosMul (Levy & Goldberg)")
    a.add_argument("-k", type=int, default=5)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_analogy)

    e = em.add_parser("eval", help="WordSim-353, SimLex-999 (Spearman rho) and Google analogies")
    e.add_argument("vectors", metavar="VECTORS")
    e.add_argument("--data-dir", metavar="DIR",
                   help="default: $CHAINRULE_DATA/embeddings or ../shared/data/embeddings")
    e.add_argument("--method", choices=("add", "mul"), default="add")
    e.add_argument("--case-sensitive", action="store_true")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=run_eval)

    g = em.add_parser("plot", help="words in 2-D (PCA or t-SNE) with non-overlapping labels")
    g.add_argument("vectors", metavar="VECTORS")
    g.add_argument("words", nargs="+", metavar="WORD")
    g.add_argument("-o", "--output", required=True, metavar="FIG.png")
    g.add_argument("--projection", choices=("pca", "tsne"), default="pca")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_plot)
    o = em.add_parser("openvocab", help="perplexity of a word-level LSTM on rare and unseen "
                                        "test words, with an open vocabulary (<unk> spelt out)")
    o.add_argument("model", metavar="MODEL_DIR")
    o.add_argument("--train", nargs="+", required=True, metavar="F",
                   help="the model's training corpus (fits the spelling model, counts words)")
    o.add_argument("--test", nargs="+", required=True, metavar="F")
    o.add_argument("--order", type=int, default=4, help="spelling model's character n-gram order")
    o.add_argument("--rare", type=int, default=10, help="'rare' = seen at most this many times")
    o.add_argument("--max-sentences", type=int, default=None)
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=run_openvocab)
    for sp in (t, x, n, a, e, g):
        sp.add_argument("--format", choices=("text", "binary", "safetensors"), default=None,
                        help="vectors file format (default: from the file name)")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load(args):
    from chainrule.embeddings.vectors import WordVectors

    return WordVectors.load(args.vectors, args.format)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from chainrule.cli._output import print_json
    from chainrule.embeddings.corpus import encode, read_sentences

    corpus = encode(read_sentences(args.corpus, args.lowercase), args.min_count)
    if args.method == "ppmi-svd":
        from chainrule.embeddings.counts import ppmi_svd

        vectors = ppmi_svd(corpus, args.dim, args.window, args.weighting,
                           0.75 if args.alpha is None else args.alpha, seed=args.seed)
        stats = {}
    else:
        from chainrule.embeddings.word2vec import train_word2vec

        vectors, stats = train_word2vec(
            corpus, method=args.method, dim=args.dim, window=args.window, epochs=args.epochs,
            negative=args.negative, sample=args.sample,
            alpha=0.025 if args.alpha is None else args.alpha, seed=args.seed,
            threads=torch.get_num_threads(), backend=args.backend)
    vectors.save(args.output, args.format)
    info = {"output": str(args.output), "method": args.method, "words": len(vectors),
            "dim": vectors.dim, **stats}
    if args.json:
        print_json(info)
    else:
        extra = (f" in {stats['seconds']:.1f}s ({stats['words_per_second']:,.0f} words/s)"
                 if stats else "")
        print(f"wrote {len(vectors)} {args.method} vectors of {vectors.dim} dimensions to "
              f"{args.output}{extra}")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.embeddings import extract
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model)
    if args.corpus:
        from chainrule.embeddings.corpus import read_sentences

        vectors = extract.contextual_vectors(model, tok, read_sentences(args.corpus), args.layer,
                                             args.min_count, args.max_sentences)
        what = f"layer {args.layer} contextual"
    else:
        vectors = extract.input_embeddings(model, tok)
        what = "input-embedding"
    vectors.save(args.output, args.format)
    if args.json:
        print_json({"output": str(args.output), "kind": what, "words": len(vectors),
                    "dim": vectors.dim})
    else:
        print(f"wrote {len(vectors)} {what} vectors of {vectors.dim} dimensions to {args.output}")
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.errors import ConfigError

    v = _load(args)
    missing = [w for w in args.words if w not in v]
    if missing:
        raise ConfigError(f"not in the vocabulary of {args.vectors}: {', '.join(missing)}.")
    out = {w: v.neighbours(w, args.k) for w in args.words}
    if args.json:
        print_json({w: [{"word": x, "cosine": s} for x, s in n] for w, n in out.items()})
    else:
        for w, n in out.items():
            print(f"{w}: " + ", ".join(f"{x} ({s:.3f})" for x, s in n))
    return 0


def run_analogy(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.embeddings.analogy import analogy

    v = _load(args)
    answers = analogy(v, args.a, args.b, args.c, args.method, args.k)
    if args.json:
        print_json({"query": [args.a, args.b, args.c], "method": args.method,
                    "covered": answers is not None,
                    "answers": [{"word": w, "score": s} for w, s in answers or []]})
    elif answers is None:
        missing = [w for w in (args.a, args.b, args.c) if w not in v]
        print(f"not covered: {', '.join(missing)} not in the vocabulary.")
    else:
        print(f"{args.a} : {args.b} :: {args.c} : " +
              ", ".join(f"{w} ({s:.3f})" for w, s in answers))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.embeddings.evaluate import evaluate_all, format_report

    result = evaluate_all(_load(args), args.data_dir, args.method, not args.case_sensitive)
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.embeddings.plot import plot_words

    info = plot_words(_load(args), args.words, args.output, args.projection)
    if args.json:
        print_json(info)
    else:
        print(f"wrote {info['path']}")
    return 0


def run_openvocab(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.embeddings.corpus import read_sentences
    from chainrule.embeddings.openvocab import evaluate_open_vocabulary
    from chainrule.errors import ConfigError
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model)
    if not hasattr(model, "hidden") or getattr(tok, "kind", None) != "word":
        raise ConfigError("openvocab needs a word-level recurrent model (rnn or lstm with a word "
                          "tokenizer).")
    test = read_sentences(args.test)[: args.max_sentences]
    r = evaluate_open_vocabulary(model, tok, read_sentences(args.train), test, order=args.order,
                                 rare=args.rare)
    if args.json:
        print_json(r)
        return 0
    for name, g in r.items():
        if isinstance(g, dict):
            ppl = "n/a" if g["ppl"] is None else f"{g['ppl']:.1f}"
            print(f"{name:<38} perplexity {ppl:>10}  ({g['tokens']} tokens)")
    return 0

"""CLI: ``chainrule finetune MODEL_DIR --task tag|classify --data CORPUS -o OUT``, and
``chainrule finetune predict OUT --data TEXT`` to tag / classify new text with a saved head."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "finetune",
        help="transfer learning: a linear head on a model for POS tagging or genre classification",
        description="Add a linear head on top of a model (bert, gpt, lstm) and train it on a "
        "word/TAG corpus (NLTK zip, directory or files; split by file, every 10th file held "
        "out): --task tag predicts each word's tag, --task classify each sentence's file label "
        "(Brown's genre from the corpus's cats.txt, or --labels FILE). Reports held-out accuracy "
        "and macro-F1; saves the head (and the body, unless --freeze) to OUT. "
        "'chainrule finetune predict OUT --data TEXT' labels new text (one sentence per line, "
        "words split at whitespace) with the saved model.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="the model to fine-tune, or 'predict'")
    p.add_argument("saved", nargs="?", metavar="OUT",
                   help="predict: a directory written by 'chainrule finetune ... -o OUT'")
    p.add_argument("--task", choices=["tag", "classify"], help="required to fine-tune")
    p.add_argument("--data", required=True, metavar="CORPUS",
                   help="word/TAG sentences, e.g. ../shared/data/brown/nltk-brown.zip (predict: "
                   "plain text, one sentence per line)")
    p.add_argument("--labels", metavar="FILE",
                   help="classify: 'FILEID LABEL' lines (default: cats.txt of the corpus)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="directory for head.safetensors and finetune.json (required to "
                   "fine-tune); predict: write the labelled text here instead of printing it")
    p.add_argument("--freeze", action="store_true",
                   help="train the head only (default: fine-tune the whole model)")
    p.add_argument("--fraction", type=float, default=1.0,
                   help="use this fraction of the training sentences (default 1)")
    p.add_argument("--max-sentences", type=int, default=3000,
                   help="read at most this many sentences (default 3000; 0 = all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="CONFUSION.png", help="plot the held-out confusion matrix")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.errors import ConfigError

    if args.model == "predict":
        return run_predict(args)
    if args.saved is not None:
        raise ConfigError(f"unexpected argument {args.saved!r}: fine-tune with 'chainrule "
                          "finetune MODEL_DIR --task ... -o OUT', or label text with "
                          "'chainrule finetune predict OUT --data TEXT'.")
    if args.task is None or args.output is None:
        raise ConfigError("fine-tuning needs --task (tag or classify) and -o OUT.")
    return run_finetune(args)


def run_predict(args: argparse.Namespace) -> int:
    """``chainrule finetune predict OUT --data TEXT``: one labelled line per input line."""
    from chainrule.cli._output import print_json
    from chainrule.errors import ConfigError
    from chainrule.fileio import atomic_write_text, require_file
    from chainrule.training.finetune import load_finetuned, predict_labels

    if args.saved is None:
        raise ConfigError("name the fine-tuned directory: 'chainrule finetune predict OUT "
                          "--data TEXT'.")
    tuner, tok, meta = load_finetuned(args.saved)
    lines = require_file(args.data, "text file").read_text(encoding="utf-8").splitlines()
    sentences = [line.split() for line in lines]
    labels = predict_labels(tuner, tok, sentences, meta["labels"])
    if args.json:
        key = "tags" if tuner.task == "tag" else "label"
        print_json({"task": tuner.task, "base": meta.get("base"), "sentences": [
            {"words": w, key: lab} for w, lab in zip(sentences, labels)]})
        return 0
    if tuner.task == "tag":  # word/TAG, as the training corpus; a word past the window: bare
        rows = [" ".join(w if t is None else f"{w}/{t}" for w, t in zip(ws, ts))
                for ws, ts in zip(sentences, labels)]
    else:
        rows = [f"{lab}\t{' '.join(ws)}" if ws else "" for ws, lab in zip(sentences, labels)]
    text = "\n".join(rows) + ("\n" if rows else "")
    if args.output:
        atomic_write_text(args.output, text)
    else:
        print(text, end="")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    import torch

    from chainrule.cli._output import print_json
    from chainrule.data.tagged import read_tagged, split_by_file
    from chainrule.errors import ConfigError, DataError
    from chainrule.evaluation.classify_metrics import classification_report
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.training.finetune import (
        FineTuner,
        file_id,
        finetune,
        make_examples,
        predict,
        read_file_labels,
        save_finetuned,
        take_fraction,
    )

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise ConfigError("--epochs and --batch-size must be at least 1 and --lr positive.")
    if not 0 < args.fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], not {args.fraction}.")
    if args.labels and args.task != "classify":
        raise ConfigError("--labels belongs to --task classify.")
    model, tok = load_model_and_tokenizer(args.model)
    if not hasattr(model, "hidden"):
        raise ConfigError(f"a {model.family} model has no hidden states to put a head on; "
                          "fine-tune a neural model (bert, gpt, lstm).")
    sentences = read_tagged(args.data, limit=args.max_sentences or None)
    train, test = split_by_file(sentences)
    file_labels = None
    if args.task == "tag":
        labels = sorted({t for s in sentences for t in s.tags})
    else:
        file_labels = read_file_labels(args.labels or args.data)
        source = args.labels or f"the cats.txt of {args.data}"
        for s in sentences:
            if file_id(s.file) not in file_labels:
                raise DataError(f"{source} gives no label for the file {file_id(s.file)!r}; "
                                "add a 'FILEID LABEL' line for it.")
        labels = sorted({file_labels[file_id(s.file)] for s in train})
        for s in test:
            if file_labels[file_id(s.file)] not in labels:
                raise DataError(f"{source}: the held-out file {file_id(s.file)!r} has the label "
                                f"{file_labels[file_id(s.file)]!r}, which no training file "
                                f"has (known: {', '.join(labels)}).")
    index = {t: i for i, t in enumerate(labels)}
    train = take_fraction(train, args.fraction, args.seed)
    ex_train = make_examples(model, tok, train, args.task, index, file_labels)
    ex_test = make_examples(model, tok, test, args.task, index, file_labels)
    torch.manual_seed(args.seed)
    tuner = FineTuner(model, len(labels), args.task, freeze=args.freeze)
    pad = tok.pad_id if tok.pad_id is not None else model.eos_id
    losses = finetune(tuner, ex_train, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, pad=pad)
    gold, pred = predict(tuner, ex_test, pad=pad)
    report = classification_report(gold, pred, labels)
    summary = {"family": model.family, "task": args.task, "freeze": args.freeze,
               "fraction": args.fraction, "train_sentences": len(train),
               "test_sentences": len(test), "train_losses": losses,
               "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
               "test_items": report["n"]}
    save_finetuned(tuner, args.output, {"base": str(args.model), **summary,
                                        "labels": labels, "confusion": report["confusion"]},
                   tokenizer=tok)
    summary["output"] = args.output
    if args.plot:
        from chainrule.evaluation.classify_metrics import plot_confusion

        plot_confusion(report, args.plot,
                       f"{model.family} {args.task}: accuracy {report['accuracy']:.3f}, "
                       f"macro-F1 {report['macro_f1']:.3f}")
        summary["plot"] = args.plot
    if args.json:
        print_json({**summary, "labels": labels, "confusion": report["confusion"]})
        return 0
    unit = "words" if args.task == "tag" else "sentences"
    print(f"{model.family} {args.task} ({'head only' if args.freeze else 'all weights'}): "
          f"{len(train)} training sentences, {report['n']} held-out {unit}, {len(labels)} labels")
    print(f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
          f"(final training loss {losses[-1]:.4f}); saved to {args.output}")
    return 0

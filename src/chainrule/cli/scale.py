"""CLI: ``chainrule scale sweep|fit|predict`` -- scaling laws at laptop or one-GPU scale.

Thin: parse the grid or the time budget, call :mod:`chainrule.scaling`, print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chainrule.cli._output import one_writer
from chainrule.errors import ConfigError


def _numbers(text: str, what: str, cast=float) -> list:
    """``"32,64,1e5"`` -> numbers; a bad item is named."""
    out = []
    for item in text.split(","):
        try:
            out.append(cast(float(item)))
        except ValueError:
            raise ConfigError(f"--{what} takes comma-separated numbers, not {item!r}.") from None
    return out


def register(sub) -> None:
    p = sub.add_parser("scale", help="scaling laws: sweep model sizes and data, fit, predict",
                       description="Scaling-law experiments (Kaplan et al. 2020, Hoffmann et al. "
                                   "2022): train a grid, fit the laws, predict a larger run.")
    ss = p.add_subparsers(dest="scale_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = ss.add_parser("sweep", help="train a grid of models with the one training loop",
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Train every (depth, width, tokens) point into DIR/runs/; a "
                                  "killed sweep resumes where it stopped when run again.",
                      epilog="learning rate from N (Kaplan eq. D.1): lr = 0.003239 - "
                             "0.0001395 ln N;\nwarm-up 5% of steps, cosine to lr/10 at the "
                             "run's last step.")
    s.add_argument("args", nargs="*", metavar="CORPUS|KEY=VALUE",
                   help="corpus text files, and KEY=VALUE settings for every run")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.add_argument("--family", default="gpt", help="gpt (default), lstm, rnn or ffnn")
    s.add_argument("--depths", metavar="L1,L2,..", help="n_layer values")
    s.add_argument("--widths", metavar="D1,D2,..", help="n_embd values")
    s.add_argument("--tokens", metavar="T1,T2,..", help="training tokens per run (D)")
    s.add_argument("--grid", metavar="GRID.toml", help="the grid as a TOML file")
    s.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="plan an IsoFLOP grid that fits in this many seconds")
    s.add_argument("--budgets", type=int, default=5, help="compute budgets a plan spans")
    s.add_argument("--decades", type=float, default=1.5, help="decades of compute a plan spans")
    s.add_argument("--tokens-per-param", type=float, default=20.0,
                   help="D/N at the middle size of each planned budget (Chinchilla: 20; tiny "
                        "character models on a CPU do best far higher, ~100-250)")
    s.add_argument("--kind", default="char", choices=["char", "word", "bpe", "bytebpe"],
                   help="tokenizer trained on the corpus (default char)")
    s.add_argument("--vocab-size", type=int, help="vocabulary size of that tokenizer")
    s.add_argument("--lr-scale", type=float, default=1.0,
                   help="multiply the size rule's learning rate")
    s.add_argument("--jobs", type=int, default=1, help="runs at once, in separate processes")
    s.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: auto)")
    s.add_argument("--json", action="store_true", help="print the results as JSON")
    s.set_defaults(func=run_sweep)

    f = ss.add_parser("fit", help="fit L(N), L(D), L(N,D) and the compute-optimal frontier")
    f.add_argument("dir", metavar="DIR", help="a sweep directory")
    f.add_argument("--holdout", action="store_true",
                   help="leave out the largest compute budget and predict it from the rest")
    f.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples for the confidence intervals (0: none)")
    f.add_argument("--compute", choices=["6nd", "exact"], default="6nd",
                   help="C = 6ND (default) or the FLOPs counted from the model's shapes")
    f.add_argument("--plots", metavar="DIR", help="write the plots here (default DIR/plots)")
    f.add_argument("--no-plots", action="store_true", help="draw no plots")
    f.add_argument("--json", action="store_true", help="print the fit as JSON")
    f.set_defaults(func=run_fit)

    q = ss.add_parser("predict", help="the loss expected at N parameters and D tokens")
    q.add_argument("dir", metavar="DIR", help="a sweep directory that `scale fit` has fitted")
    q.add_argument("n", type=float, metavar="N", help="non-embedding parameters")
    q.add_argument("d", type=float, metavar="D", help="training tokens")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_predict)


@one_writer("output")
def run_sweep(args: argparse.Namespace) -> int:
    import torch

    from chainrule.cli.train_neural import split_args
    from chainrule.data import resolve_paths
    from chainrule.scaling.grid import grid_points, read_grid_toml
    from chainrule.scaling.run import sweep_corpus
    from chainrule.training.config import parse_overrides

    names, overrides = split_args(args.args)
    settings = parse_overrides(overrides, args.family) if overrides else {}
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be 1 or more, not {args.jobs}.")
    points = None
    lists = [args.depths, args.widths, args.tokens]
    if args.grid:
        points, from_file = read_grid_toml(args.grid)
        settings = {**from_file, **settings}
    elif any(lists):
        if not all(lists):
            raise ConfigError("give --depths, --widths and --tokens together (or --grid, or "
                              "--time-budget).")
        points = grid_points(args.family, _numbers(args.depths, "depths", int),
                             _numbers(args.widths, "widths", int),
                             _numbers(args.tokens, "tokens", int))
    files = resolve_paths(names) if names else []
    results = sweep_corpus(
        files, args.output, points, time_budget=args.time_budget, family=args.family,
        kind=args.kind, vocab_size=args.vocab_size, settings=settings, lr_scale=args.lr_scale,
        device=args.device, jobs=args.jobs, threads=torch.get_num_threads(),
        plan_options={"n_budgets": args.budgets, "decades": args.decades,
                      "tokens_per_param": args.tokens_per_param})
    if args.json:
        from chainrule.cli._output import print_json

        print_json([{k: v for k, v in r.items() if k != "curve"} for r in results])
        return 0
    from chainrule.cli._output import print_table

    print_table([{"run": r["name"], "N": r["N"], "D": r["D"], "C": r["C"],
                  "val_loss": r["val_loss"] if r["status"] == "ok" else "diverged",
                  "bits/byte": r["bpb"] if r["status"] == "ok" else "",
                  "seconds": r["seconds"]} for r in results])
    print(f"{len(results)} runs in {args.output}; fit them with: chainrule scale fit "
          f"{args.output}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from chainrule.scaling.analysis import fit_sweep
    from chainrule.scaling.report import format_report

    plots = None if args.no_plots else Path(args.plots or Path(args.dir) / "plots")
    report = fit_sweep(args.dir, holdout=args.holdout, n_boot=args.bootstrap,
                       compute=args.compute, plot_dir=plots)
    if args.json:
        from chainrule.cli._output import print_json

        print_json(report)
    else:
        sys.stdout.write(format_report(report))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from chainrule.scaling.analysis import predict_loss

    out = predict_loss(args.dir, args.n, args.d)
    if args.json:
        from chainrule.cli._output import print_json

        print_json(out)
    else:
        lo, hi = out["interval"]
        print(f"L(N={args.n:.3g}, D={args.d:.3g}) = {out['loss']:.4f} nats/token "
              f"(90% interval {lo:.4f} .. {hi:.4f}; {out['bpb']:.4f} bits/byte)")
    return 0


__all__ = ["register"]

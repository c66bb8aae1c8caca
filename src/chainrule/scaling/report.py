"""The text report of ``chainrule scale fit`` (the JSON report is :func:`fit_sweep`'s dict)."""

from __future__ import annotations

import math
from typing import Any


def _ci(report: dict[str, Any], name: str) -> str:
    iv = report.get("intervals", {}).get(name)
    if not iv or any(not math.isfinite(v) for v in iv):
        return ""
    return f" [90% CI {iv[0]:.3g} .. {iv[1]:.3g}]"


def _law_line(report: dict[str, Any], key: str, what: str, ci: str) -> str:
    law = report[key]
    if "skipped" in law:
        return f"{what}: not fitted ({law['skipped']})"
    return (f"{what}: alpha = {law['alpha']:.4f}{_ci(report, ci)}, x_c = {law['x_c']:.3g}, "
            f"R² = {law['r2']:.3f}")


def format_report(report: dict[str, Any]) -> str:
    """Plain lines: the runs, each law with its interval, the optimum, the hold-out test."""
    ref = report["reference"]
    head = (f"sweep {report['dir']}: {report['n_runs']} {report['family']} runs over "
            f"{report['compute_decades']:.2f} decades of compute (C = "
            f"{'6ND' if report['compute'] == '6nd' else 'counted FLOPs'}); "
            f"{report['bytes_per_token']:.3f} bytes per token")
    lines = [head]
    for e in report["excluded"]:
        lines.append(f"  left out {e['name']}: {e['reason']}")
    fr = report["frontier"]["fit"]
    lines.append(f"frontier L(C) = (C_c/C)^alpha_C: alpha_C = {fr['alpha']:.4f}"
                 f"{_ci(report, 'alpha_C')}, C_c = {fr['x_c']:.3g}, R² = {fr['r2']:.3f} "
                 f"(Kaplan: {ref['kaplan']['alpha_C']})")
    off = report["frontier"].get("offset_fit", {})
    if "skipped" not in off:
        lines.append(f"frontier L(C) = E + (C_0/C)^alpha: E = {off['E']:.3f}, alpha = "
                     f"{off['alpha']:.3f}, R² = {off['r2']:.3f}")
    lines.append(_law_line(report, "L_N", "L(N) = (N_c/N)^alpha_N", "alpha_N")
                 + f" (Kaplan: {ref['kaplan']['alpha_N']})")
    lines.append(_law_line(report, "L_D", "L(D) = (D_c/D)^alpha_D", "alpha_D")
                 + f" (Kaplan: {ref['kaplan']['alpha_D']})")
    for fam, laws in report.get("by_family", {}).items():
        law = laws["L_N"]
        if "skipped" not in law:
            lines.append(f"  {fam}: L(N) alpha_N = {law['alpha']:.4f}, R² = {law['r2']:.3f}")
    ch = report["chinchilla"]
    if "skipped" in ch:
        lines.append(f"L(N, D): not fitted ({ch['skipped']})")
    else:
        lines.append(f"L(N, D) = E + A/N^alpha + B/D^beta: E = {ch['E']:.3f}{_ci(report, 'E')}, "
                     f"A = {ch['A']:.3g}, B = {ch['B']:.3g}, alpha = {ch['alpha']:.3f}"
                     f"{_ci(report, 'alpha')}, beta = {ch['beta']:.3f}{_ci(report, 'beta')}, "
                     f"R² = {ch['r2']:.3f} (Chinchilla: alpha {ref['chinchilla']['alpha']}, "
                     f"beta {ref['chinchilla']['beta']})")
    opt = report["optimal"]
    for name, what in (("approach1", "frontier runs"), ("approach2", "IsoFLOP minima"),
                       ("approach3", "L(N, D)")):
        if name in opt:
            ci = _ci(report, "a") if name == "approach3" else ""
            lines.append(f"N_opt ∝ C^a ({what}): a = {opt[name]['a']:.3f}{ci} "
                         f"(Chinchilla: {ref['chinchilla']['a']})")
    for row in opt.get("approach3", {}).get("table", []):
        lines.append(f"  C = {row['C']:.3g}: N_opt = {row['N_opt']:.3g}, D_opt = "
                     f"{row['D_opt']:.3g}, L = {row['loss']:.4f}")
    ho = report.get("holdout")
    if ho:
        lines.append(f"hold-out: {len(ho['held_out'])} runs of the largest budget left out, "
                     f"fitted on {ho['fitted_on']}, extrapolating "
                     f"{ho['extrapolation_decades']:.2f} decades; measured best "
                     f"{ho['measured']:.4f} at C = {ho['compute']:.3g}")
        p = ho["frontier_power"]
        lines.append(f"  frontier power law predicts {p['predicted']:.4f} "
                     f"({100 * p['error']:+.2f}%)")
        if "frontier_offset" in ho:
            p = ho["frontier_offset"]
            lines.append(f"  frontier with offset predicts {p['predicted']:.4f} "
                         f"({100 * p['error']:+.2f}%)")
        if "chinchilla" in ho:
            c = ho["chinchilla"]
            lines.append(f"  L(N, D) predicts the best at {c['best_predicted']:.4f} "
                         f"({100 * c['best_error']:+.2f}%)")
    for p in report.get("plots", []):
        lines.append(f"plot: {p}")
    return "\n".join(lines) + "\n"


__all__ = ["format_report"]

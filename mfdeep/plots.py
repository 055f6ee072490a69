"""Figures of a ``mfdeep verify`` report, drawn from ``report.json`` alone.

Every figure reads the numbers a check stored in its claim's ``details``,
so ``mfdeep plot DIR/report.json`` redraws them later without rerunning
anything. A claim absent from the report (or run without the data a figure
needs) gives no figure; :func:`write_plots` returns the files it wrote.

=====================  =====================================================
file                   content
=====================  =====================================================
``c8_coupling.png``    E|W - Wbar| against N, log-log, fitted slope and an
                       N^-1/2 guide, one series per layer
``c9_sgd.png``         E|W_sgd - W_gf| against eps, fitted slope and an
                       eps^1/2 guide
``c10_trajectories.png``  risk and outputs of the networks against the limit
                       over time, one curve per N
``c4_picard.png``      Picard distances d(G_n+1, G_n) against n beside the
                       bounds (KT)^n/n! and its trapezoidal analogue
``c12_displacement.png``  per-layer histograms of |W(t) - W(0)|, network
                       against ideal particles, at the largest N
``c7_dependence.png``  inter-layer dependence along paths against N,
                       network against ideal particles
=====================  =====================================================
"""

from __future__ import annotations

import io
import pathlib

from mfdeep.atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    """Write a PNG atomically (render to memory, then temp file and rename)
    and close the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write(path, buf.getvalue())


def _label_measured(ax, values):
    """Put the x tick labels at the measured values only (log-axis minor
    labels collide on these short ranges)."""
    import matplotlib.ticker as ticker

    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _fitted_line(x, y, slope):
    """The line of the given slope through the geometric mean of the points."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    lx, ly = np.log(x), np.log(y)
    c = ly.mean() - slope * lx.mean()
    return np.exp(c + slope * lx)


def _rate_axes(ax, x, series, guide, xlabel, ylabel, title):
    """Log-log axes of measured series against ``x``, each with its fitted
    line; ``series`` holds ``(values, slope, label, yerr)``; ``guide`` is
    ``(slope, label)`` of a reference rate drawn below the first series."""
    for values, slope, label, yerr in series:
        line = ax.errorbar(x, values, yerr=yerr, marker="o", capsize=3,
                           label=f"{label}: fitted slope {slope:.2f}")
        ax.plot(x, _fitted_line(x, values, slope), ls="--", lw=1,
                color=line[0].get_color())
    ax.plot(x, _fitted_line(x, series[0][0], guide[0]) * 0.6, color="grey", lw=1,
            ls=":", label=guide[1])
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    _label_measured(ax, x)
    ax.legend(fontsize=8)


def plot_c8(details, path, title):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    errs = details.get("gap_standard_errors", [None] * len(details["slopes"]))
    series = [(gaps, slope, f"layer {l}", err) for l, (gaps, slope, err) in
              enumerate(zip(details["gap_by_layer"], details["slopes"], errs), start=1)]
    _rate_axes(ax, details["N"], series, (-0.5, "N^-1/2 guide"), "width N",
               "E|W(t) - Wbar(t)|", title)
    _save(fig, path)


def plot_c9(details, path, title):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    series = [(errs, slope, f"layer {l}", None) for l, (errs, slope) in
              enumerate(zip(details["error_by_layer"], details["slopes"]), start=1)]
    _rate_axes(ax, details["eps"], series, (0.5, "eps^1/2 guide"), "SGD step eps",
               "E|W_sgd(t) - W_gf(t)|", title)
    _save(fig, path)


def plot_c10(details, path, title):
    import numpy as np

    plt = _pyplot()
    tr = details["trajectories"]
    times = tr["times"]
    gaps = "output_gap_by_N" in details
    fig, axes = plt.subplots(1, 3 if gaps else 2, figsize=(15 if gaps else 10, 4))
    a1, a2 = axes[0], axes[1]
    colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(details["N"])))
    for N, risk, c in zip(details["N"], tr["risk_network_mean"], colors):
        a1.plot(times, risk, marker=".", color=c, label=f"network N={N}")
    a1.plot(times, tr["risk_limit"], color="black", lw=2, ls="--", label="limit")
    a1.set(xlabel="t", ylabel="risk (mean over replicas)", title="risk")
    a1.legend(fontsize=8)
    out_limit = np.asarray(tr["output_limit"])
    n_points = min(2, out_limit.shape[1])
    styles = ["-", "-."]
    for k in range(n_points):
        for N, out, c in zip(details["N"], tr["output_network_mean"], colors):
            a2.plot(times, np.asarray(out)[:, k], color=c, ls=styles[k], marker=".",
                    label=f"N={N}" if k == 0 else None)
        a2.plot(times, out_limit[:, k], color="black", lw=2, ls="--",
                label="limit" if k == 0 else None)
    a2.set(xlabel="t", ylabel="output",
           title="outputs at data points 1 (solid) and 2 (dash-dot)")
    a2.legend(fontsize=8)
    if gaps:
        # The gaps at the final time against N: what the curves above hide.
        series = [(details["output_gap_by_N"], details["output_slope_in_N"],
                   "max_x |yhat - ybar|", None),
                  (details["risk_gap_by_N"], details["slope_in_N"], "|R_N - Rbar|",
                   None)]
        _rate_axes(axes[2], details["N"], series, (-0.5, "N^-1/2 guide"), "width N",
                   "gap at the final time (mean over replicas)", "gaps to the limit")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_c4(details, path, title):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    d = details["picard_distances"]
    n = list(range(len(d)))
    ax.plot(n, d, marker="o", label="measured d(G_n+1, G_n)")
    ax.plot(n, details["iterate_bound_KT"], ls="--",
            label=f"d_0 (KT)^n / n!, K={details['K']:.3g}, T={details['T']:.3g}")
    ax.plot(n, details["iterate_bound_trapezoid"], ls=":",
            label="trapezoidal-grid bound")
    ax.set(yscale="log", xlabel="Picard iteration n", ylabel="sup-distance",
           title=title)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_c12(details, path, title):
    import numpy as np

    plt = _pyplot()
    hists = details["histograms_at_largest_N"]
    fig, axes = plt.subplots(1, len(hists), figsize=(5 * len(hists), 3.8), squeeze=False)
    for l, (ax, h) in enumerate(zip(axes[0], hists), start=1):
        edges = np.asarray(h["edges"])
        width = np.diff(edges)
        for kind, style in (("network", dict(alpha=0.55)),
                            ("particles", dict(histtype="step", lw=1.8))):
            counts = np.asarray(h[kind])
            ax.hist(edges[:-1], bins=edges, weights=counts / (counts.sum() * width),
                    label=kind if kind == "network" else "ideal particles", **style)
        ax.set(xlabel="|W(t) - W(0)| per edge", ylabel="density",
               title=f"layer {l}")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def plot_c7_dependence(details, path, title):
    plt = _pyplot()
    dep = details["path_dependence"]
    Ns = details["N"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    n_pairs = len(dep["network"][0])
    for k in range(n_pairs):
        ax.plot(Ns, [d[k] for d in dep["network"]], marker="o",
                label=f"network, layers {k + 1}-{k + 2}")
        ax.plot(Ns, [d[k] for d in dep["particles"]], marker="s", ls="--",
                label=f"ideal particles, layers {k + 1}-{k + 2}")
    ax.set(xscale="log", yscale="log", xlabel="width N",
           ylabel="mean |corr(dW^l_ij, dW^(l+1)_jk)| over paths", title=title)
    _label_measured(ax, Ns)
    ax.legend(fontsize=8)
    _save(fig, path)


def write_plots(report, out):
    """Draw every figure the report has data for into folder ``out``.

    Returns the list of paths written.
    """
    out = pathlib.Path(out)
    claims = {c["id"]: c["details"] for c in report["claims"]}
    inst = report["instance"]
    jobs = []
    if "gap_by_layer" in claims.get("C8", {}):
        jobs.append((plot_c8, claims["C8"], "c8_coupling.png",
                     f"C8 on {inst}: ideal particles vs network"))
        if claims["C8"].get("path_dependence") and report_has_pairs(claims["C8"]):
            jobs.append((plot_c7_dependence, claims["C8"], "c7_dependence.png",
                         f"C7 at finite N on {inst}: dependence along paths"))
    if "error_by_layer" in claims.get("C9", {}):
        jobs.append((plot_c9, claims["C9"], "c9_sgd.png",
                     f"C9 on {inst}: SGD vs gradient flow"))
    if "trajectories" in claims.get("C10", {}):
        jobs.append((plot_c10, claims["C10"], "c10_trajectories.png",
                     f"C10 on {inst}: finite networks vs the limit"))
    if "picard_distances" in claims.get("C4", {}):
        jobs.append((plot_c4, claims["C4"], "c4_picard.png",
                     f"C4 on {inst}: Picard iterates"))
    if "histograms_at_largest_N" in claims.get("C12", {}):
        N = claims["C12"]["N"][-1]
        jobs.append((plot_c12, claims["C12"], "c12_displacement.png",
                     f"C12 on {inst}: displacement at N={N}"))
    written = []
    for fn, details, name, title in jobs:
        fn(details, out / name, title)
        written.append(out / name)
    return written


def report_has_pairs(details):
    """Whether the path-dependence data has at least one pair of layers."""
    net = details["path_dependence"]["network"]
    return bool(net) and bool(net[0])

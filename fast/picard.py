"""Picard iteration of the layered MV problem on a time grid (MODEL.md section 4).

A flow is a list over trained layers of tensors (M+1, *layer_shape): the
layered state at the grid times t_0 = 0 < ... < t_M = T (shapes as in
:mod:`mfdeep.fast.layered`). The Picard map

    Psi(Gamma)_l(t) = w0 + int_0^t bbar_l[mu_s^Gamma](Gamma_l(s)) ds

is evaluated with the drift at the grid times and the trapezoidal rule, so
its fixed point is the trapezoidal discretisation of the MV solution (error
O(h^2) in the grid step h).

Metric (proofs_notes/04_mv_picard.md): d_lam(G, G') = max over grid times of
exp(-lam t) max_l sup_features E|G_l(t) - G'_l(t)|, with |.| the Euclidean
norm on R^p, the expectation over the initial-weight atom and the sup over the
feature atoms the layer is keyed by (theta0 atoms for layer 1, thetaL atoms
for layer L-1, both for L = 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from mfdeep.errors import InstanceError, NonFiniteError
from mfdeep.fast.layered import atomic_limit, mean_fields


def constant_flow(W0, n_times):
    """The flow that stays at ``W0`` (list of layer tensors) at every grid time."""
    return [w[None].expand(n_times, *w.shape).clone() for w in W0]


def picard_map(model, lim, flow, times):
    """Psi(flow) on the grid ``times`` (1-d tensor), trapezoidal rule.

    The integral starts from the initial weights w0 of the atomic law, not
    from ``flow`` at t = 0: Psi maps every flow to one with the right
    initial value, which is what makes its fixed point unique.
    """
    W0 = lim.initial()
    M = len(times)
    drifts = [[] for _ in flow]
    for m in range(M):
        b = mean_fields(model, lim, [f[m] for f in flow], float(times[m]))[1]
        for l, bl in enumerate(b):
            drifts[l].append(bl)
    h = (times[1:] - times[:-1]).to(flow[0].dtype)
    out = []
    for w0, d in zip(W0, drifts):
        d = torch.stack(d)
        shape = (-1,) + (1,) * (d.dim() - 1)
        steps = (d[1:] + d[:-1]) * (h.reshape(shape) / 2)
        integral = torch.cat([torch.zeros_like(d[:1]), torch.cumsum(steps, 0)])
        out.append(w0[None] + integral)
    return out


def distance(lim, flow_a, flow_b, times, lam=0.0):
    """d_lam between two flows (see module doc)."""
    L = len(lim.M) + 1
    weight = torch.exp(-lam * times.to(flow_a[0].dtype))
    worst = None
    for l, (a, b) in enumerate(zip(flow_a, flow_b), start=1):
        diff = torch.linalg.vector_norm(a - b, dim=-1)  # (M+1, *keys)
        if L == 2:
            per = torch.einsum("mabj,b->maj", diff, lim.qm[0]).amax(dim=(1, 2))
        elif l == 1:
            per = torch.einsum("mab,b->ma", diff, lim.qm[0]).amax(dim=1)
        elif l == L - 1:
            per = torch.einsum("mij,i->mj", diff, lim.qm[l - 1]).amax(dim=1)
        else:
            per = diff @ lim.qm[l - 1]
        layer = (per * weight).max()
        worst = layer if worst is None else torch.maximum(worst, layer)
    return float(worst)


@dataclass
class PicardResult:
    """Outcome of :func:`picard`.

    ``flow`` the last iterate; ``successive`` d_0 between iterates n and n+1;
    ``ratios`` d_lam(Psi G_n, Psi G_{n-1}) / d_lam(G_n, G_{n-1}) (measured
    contraction ratios); ``residual`` d_0(Psi(flow), flow); ``converged``.
    """

    flow: list
    times: torch.Tensor
    successive: list
    ratios: list
    residual: float
    converged: bool
    stats: dict = field(default_factory=dict)


def picard(model, T, n_grid=64, max_iter=60, atol=None, lam=0.0, start=None, lim=None):
    """Iterate the Picard map from ``start`` (default: the constant flow w0).

    Stops when successive iterates are within ``atol`` (default: 100 times the
    dtype's machine epsilon) in d_0, or after ``max_iter`` iterations; the
    caller must look at ``converged``.
    """
    lim = atomic_limit(model) if lim is None else lim
    if n_grid < 1 or max_iter < 1:
        raise InstanceError(f"n_grid={n_grid}, max_iter={max_iter} must be >= 1")
    dtype = model.dtype
    atol = 100 * torch.finfo(dtype).eps if atol is None else atol
    times = torch.linspace(0.0, float(T), n_grid + 1, dtype=dtype, device=model.device)
    flow = constant_flow(lim.initial(), n_grid + 1) if start is None else start
    successive, ratios = [], []
    prev_dist = None
    converged = False
    for it in range(max_iter):
        new = picard_map(model, lim, flow, times)
        d0 = distance(lim, new, flow, times)
        dl = distance(lim, new, flow, times, lam)
        successive.append(d0)
        if prev_dist is not None and prev_dist > 0:
            ratios.append(dl / prev_dist)
        prev_dist = dl
        flow = new
        if not math.isfinite(d0):
            bad = [l + 1 for l, f in enumerate(new) if not torch.isfinite(f).all()]
            raise NonFiniteError(f"Picard iterate {it + 1} is not finite in layer(s) "
                                 f"{bad}; shorten T or refine the grid")
        if d0 <= atol:
            converged = True
            break
    residual = distance(lim, picard_map(model, lim, flow, times), flow, times)
    return PicardResult(flow, times, successive, ratios, residual, converged,
                        {"iterations": len(successive), "lam": lam, "n_grid": n_grid})


def trapezoid_gain(times, lam):
    """max_m sum_j w_mj exp(-lam (t_m - t_j)) for the trapezoidal weights w_mj.

    The discrete analogue of (1 - exp(-lam T)) / lam: if the drift is
    K-Lipschitz in the metric, d_lam(Psi G, Psi G') <= K * this * d_lam(G, G').
    """
    t = times.double().cpu()
    h = t[1:] - t[:-1]
    best = 0.0
    for m in range(1, len(t)):
        w = torch.zeros(m + 1, dtype=torch.float64)
        w[:-1] += h[:m] / 2
        w[1:] += h[:m] / 2
        best = max(best, float((w * torch.exp(-lam * (t[m] - t[: m + 1]))).sum()))
    return best

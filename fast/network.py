"""Finite networks of MODEL.md section 1, batched over R replicas, in torch.

Shapes: ``theta0`` (R, N, p0), ``W[l-1]`` (R, N, N, p) for l = 1 .. L-1 with
``W[l-1][r, i, j]`` the weight of edge i -> j between hidden l and l+1,
``thetaL`` (R, N, pL). States ``H[l-1]`` are (R, B, N) for a batch of B
inputs per replica; ``G[l]`` likewise.

Forward, backward and drift are explicit (no autograd). Inner maps that are
linear in w, sigma(h, w) = sum_k w_k f_k(h), use matrix products:

    H_{l+1} = (1/N) sum_k f_k(H_l) @ W_k,   G_l = (1/N) sum_k f_k'(H_l) (G_{l+1} @ W_k^T);

other maps are evaluated edge by edge on (R, B, N, N) tensors. The drift is

    b_l(i, j) = -alpha(t) sum_b c_b dw sigma_l(H_l(b, i), W_l(i, j)) G_{l+1}(b, j),

with c_b = P_b dl(Y_b, yhat_b) (population) or dl / B (a mini-batch).
Source: proofs_notes/01_network.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mfdeep.errors import DivergenceError, InstanceError, NonFiniteError


@dataclass
class NetworkState:
    """Features and weights of R networks of width N (all tensors)."""

    theta0: torch.Tensor
    W: list
    thetaL: torch.Tensor

    @property
    def R(self):
        return self.theta0.shape[0]

    @property
    def N(self):
        return self.theta0.shape[1]

    def clone(self):
        return NetworkState(self.theta0.clone(), [w.clone() for w in self.W],
                            self.thetaL.clone())


def _sample(law, shape, generator, dtype):
    """Draw ``shape + (law.dim,)`` values of ``law`` on the CPU (reproducible)."""
    size = tuple(shape) + (law.dim,)
    if law.kind == "gaussian":
        mean = torch.tensor([float(v) for v in law.mean], dtype=dtype)
        std = torch.tensor([float(v) for v in law.std], dtype=dtype)
        return mean + std * torch.randn(size, generator=generator, dtype=dtype)
    if law.kind == "uniform":
        low = torch.tensor([float(v) for v in law.low], dtype=dtype)
        high = torch.tensor([float(v) for v in law.high], dtype=dtype)
        return low + (high - low) * torch.rand(size, generator=generator, dtype=dtype)
    pts, w = law.law.as_arrays()
    idx = torch.multinomial(torch.tensor(w), int(torch.tensor(shape).prod()),
                            replacement=True, generator=generator)
    return torch.tensor(pts, dtype=dtype)[idx].reshape(size)


def draw_network(instance, N, R=1, seed=0, dtype=torch.float64, device="cpu"):
    """Draw R independent width-``N`` networks from the instance's laws.

    Sampling happens on the CPU in float64 with a ``torch.Generator`` seeded
    by ``seed``, then the draws are rounded to ``dtype`` and moved to
    ``device``: the same seed gives the same networks on every device and,
    up to rounding, in every dtype.
    """
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise InstanceError(f"N={N!r}; give a positive integer width")
    if isinstance(R, bool) or not isinstance(R, int) or R < 1:
        raise InstanceError(f"R={R!r}; give a positive integer number of replicas")
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    theta0 = _sample(instance.nu0, (R, N), g, f64)
    W = [_sample(law, (R, N, N), g, f64) for law in instance.m]
    thetaL = _sample(instance.nuL, (R, N), g, f64)

    def move(x):
        return x.to(device=device, dtype=dtype)

    return NetworkState(move(theta0), [move(w) for w in W], move(thetaL))


def forward(model, state, X):
    """States, output and the cached derivative tables at inputs ``X`` (R, B, d_x).

    Returns ``(H, yhat, cache)``: ``H`` list of (R, B, N) for hidden 1 .. L,
    ``yhat`` (R, B), ``cache`` what :func:`backward` and :func:`drift` reuse.
    """
    N = state.N
    H = [model.input_states(X, state.theta0)]
    cache = []
    for l in range(1, model.L):
        h, W = H[-1], state.W[l - 1]
        feats = model.features[l - 1]
        p = W.shape[-1]
        if feats is not None:
            F = feats(h)
            nxt = sum(torch.matmul(F[k], W[..., k]) for k in range(p)) / N
            cache.append(("linear", F[p:], F[:p]))
        else:
            out = model.sigma[l - 1](h[:, :, :, None], *[W[:, None, :, :, k]
                                                         for k in range(p)])
            nxt = out[0].mean(dim=2)
            cache.append(("edge", out[1], out[2:]))
        H.append(nxt)
    sL, dL = model.sigmaL(H[-1], *[state.thetaL[:, None, :, k]
                                   for k in range(state.thetaL.shape[-1])])
    yhat = sL.mean(dim=2)
    return H, yhat, (cache, dL)


def backward(model, state, cache):
    """Backward signals ``G[l]`` (R, B, N) for l = 2 .. L, as a dict."""
    tables, dL = cache
    N, L = state.N, model.L
    G = {L: dL}
    for l in range(L - 1, 1, -1):
        kind, dh, _ = tables[l - 1]
        if kind == "linear":
            W = state.W[l - 1]
            G[l] = sum(dh[k] * torch.matmul(G[l + 1], W[..., k].transpose(-1, -2))
                       for k in range(W.shape[-1])) / N
        else:
            G[l] = (dh * G[l + 1][:, :, None, :]).mean(dim=3)
    return G


def drift(model, state, cache, G, c, t):
    """Drift ``b[l-1]`` (R, N, N, p) given per-sample weights ``c`` (R, B)."""
    tables, _ = cache
    a = -model.alpha(t)
    out = []
    for l in range(1, model.L):
        kind, _, dw = tables[l - 1]
        Gc = G[l + 1] * c[:, :, None]
        if kind == "linear":
            parts = [torch.matmul(f.transpose(-1, -2), Gc) for f in dw]
        else:
            parts = [torch.einsum("rbij,rbj->rij", d, Gc) for d in dw]
        out.append(torch.stack(parts, dim=-1) * a)
    return out


def population_drift(model, state, t=0.0):
    """Gradient-flow drift b^N (list of (R, N, N, p)) and the risk (R,) at time t.

    Data points are processed one at a time when edge tables are needed, so
    memory stays O(R N^2 p).
    """
    R = state.R
    n = model.X.shape[0]
    chunk = n if all(f is not None for f in model.features) else 1
    total, risk = None, torch.zeros(R, dtype=model.dtype, device=model.device)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        X = model.X[sl].expand(R, -1, -1)
        Y, P = model.Y[sl].expand(R, -1), model.P[sl].expand(R, -1)
        H, yhat, cache = forward(model, state, X)
        G = backward(model, state, cache)
        c = P * model.dloss(Y, yhat)
        b = drift(model, state, cache, G, c, t)
        total = b if total is None else [u + v for u, v in zip(total, b)]
        risk = risk + (P * model.loss(Y, yhat)).sum(dim=1)
    return total, risk


def outputs(model, state):
    """Network outputs on the data points: (R, n)."""
    X = model.X.expand(state.R, -1, -1)
    return forward(model, state, X)[1]


def check_finite(state, step, where="weights", max_abs=None):
    """Raise on a NaN/Inf, or on a weight beyond ``max_abs`` when one is given.

    :class:`NonFiniteError` for NaN/Inf, :class:`DivergenceError` for the
    bound; both name the step, layer and replica.
    """
    for l, W in enumerate(state.W, start=1):
        flat = W.reshape(W.shape[0], -1)
        bad = ~torch.isfinite(flat).all(dim=1)
        if bool(bad.any()):
            r = int(torch.nonzero(bad)[0])
            raise NonFiniteError(
                f"non-finite {where} at step {step}, layer {l}, replica {r}; "
                "lower the step size or the learning rate"
            )
        if max_abs is not None:
            big = flat.abs().amax(dim=1)
            if bool((big > max_abs).any()):
                r = int(torch.nonzero(big > max_abs)[0])
                raise DivergenceError(
                    f"{where} beyond the bound |w| <= {max_abs:g} at step {step}, "
                    f"layer {l}, replica {r} (largest |w| = {float(big[r]):.3g}); "
                    "lower the step size or the learning rate, or raise the bound"
                )

"""Training finite networks: online SGD and population gradient flow.

* :func:`sgd` -- W <- W + eps * b(k eps) with b the drift of a mini-batch of
  B fresh samples from the data law P per replica (MODEL.md section 1);
  indices come from a ``torch.Generator`` seeded by ``seed``.
* :func:`gradient_flow` -- dW/dt = b^N(W, t) by Euler, Heun or RK4 steps.

Both record outputs and risk (and, if asked, weights) at requested steps
only, so no tensor grows with the number of steps. A NaN or Inf stops the run
with :class:`~mfdeep.errors.NonFiniteError` naming the step, layer and replica.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from mfdeep.errors import InstanceError, NonFiniteError
from mfdeep.fast.network import (backward, check_finite, drift, forward, outputs,
                                 population_drift)


@dataclass
class Record:
    """Quantities recorded at the requested steps.

    ``times`` (list of float); ``risk`` (n_rec, R); ``outputs`` (n_rec, R, n);
    ``weights`` list over records of lists over layers of (R, N, N, p), or
    None; ``stats`` solver statistics (steps, seconds).
    """

    times: list
    risk: torch.Tensor
    outputs: torch.Tensor
    weights: list | None
    stats: dict = field(default_factory=dict)


class _Recorder:
    def __init__(self, model, record_weights):
        self.model, self.record_weights = model, record_weights
        self.times, self.risk, self.outputs, self.weights = [], [], [], []

    def __call__(self, state, t):
        yhat = outputs(self.model, state)
        m = self.model
        self.times.append(float(t))
        self.outputs.append(yhat)
        self.risk.append((m.P * m.loss(m.Y, yhat)).sum(dim=1))
        if self.record_weights:
            self.weights.append([w.clone() for w in state.W])

    def result(self, **stats):
        return Record(self.times, torch.stack(self.risk), torch.stack(self.outputs),
                      self.weights if self.record_weights else None, stats)


def _steps_set(record_steps, n_steps):
    steps = sorted({int(s) for s in (record_steps if record_steps is not None
                                     else [0, n_steps])})
    bad = [s for s in steps if s < 0 or s > n_steps]
    if bad:
        raise InstanceError(f"record steps {bad} outside 0 .. n_steps={n_steps}")
    return set(steps)


def _check_outputs(yhat, state, step):
    if not bool(torch.isfinite(yhat).all()):
        check_finite(state, step)
        r = int(torch.nonzero(~torch.isfinite(yhat).all(dim=1))[0])
        raise NonFiniteError(f"non-finite output at step {step}, replica {r}")


def sgd(model, state, eps, n_steps, batch=1, seed=0, record_steps=None,
        record_weights=False, check_every=1, lazy_rank=0, max_weight=None):
    """Online SGD with step ``eps`` for ``n_steps`` steps, in place on ``state``.

    Parameters
    ----------
    eps : float
        Time step; step k uses the learning rate alpha(k eps).
    batch : int
        Fresh samples per step and replica (B >= 1).
    seed : int
        Seeds the sample generator on the model's device (so the same seed
        gives different samples on a CPU and on a GPU).
    record_steps : iterable of int, optional
        Steps at which outputs and risk are recorded (default: 0 and n_steps).
    check_every : int
        Steps between NaN/Inf checks of the outputs (a device sync each).
    max_weight : float, optional
        Stop with :class:`~mfdeep.errors.DivergenceError` when a weight
        leaves ``|w| <= max_weight`` (checked every ``check_every`` steps
        and at the end; with ``lazy_rank``, at the end).
    lazy_rank : int
        For inner maps linear in w only: keep up to ``lazy_rank`` steps of
        updates as low-rank factors U V^T and fold them into W with one
        matrix product (see :func:`_sgd_lazy`). 0 updates W every step.

    Notes
    -----
    With ``lazy_rank > 0`` the result equals eager SGD up to round-off (the
    sums are ordered differently); tests check this.
    """
    model.check_state(state)
    if not eps > 0:
        raise InstanceError(f"eps={eps!r} must be positive")
    if batch < 1:
        raise InstanceError(f"batch={batch!r} must be >= 1")
    rec = _Recorder(model, record_weights)
    steps = _steps_set(record_steps, n_steps)
    g = torch.Generator(device=model.device).manual_seed(seed)
    R = state.R
    start = time.perf_counter()
    if lazy_rank:
        if any(f is None for f in model.features):
            raise InstanceError(
                "lazy_rank needs inner maps linear in w (e.g. 'mlp', 'cubic'); "
                "use lazy_rank=0 for other maps"
            )
        _sgd_lazy(model, state, eps, n_steps, batch, g, lazy_rank, steps, rec,
                  check_every)
        check_finite(state, n_steps, max_abs=max_weight)
        return state, rec.result(steps=n_steps, seconds=time.perf_counter() - start)
    for k in range(n_steps + 1):
        if k in steps:
            rec(state, k * eps)
        if k == n_steps:
            break
        idx = torch.multinomial(model.P.expand(R, -1), batch, replacement=True,
                                generator=g)
        X, Y = model.X[idx], model.Y[idx]
        H, yhat, cache = forward(model, state, X)
        if check_every and k % check_every == 0:
            _check_outputs(yhat, state, k)
            if max_weight is not None:
                check_finite(state, k, max_abs=max_weight)
        G = backward(model, state, cache)
        c = model.dloss(Y, yhat) / batch
        for W, b in zip(state.W, drift(model, state, cache, G, c, k * eps)):
            W.add_(b, alpha=eps)
    check_finite(state, n_steps, max_abs=max_weight)
    return state, rec.result(steps=n_steps, seconds=time.perf_counter() - start)


def _sgd_lazy(model, state, eps, n_steps, batch, g, rank, steps, rec, check_every):
    """Online SGD with deferred low-rank updates (maps linear in w).

    One step adds eps * b = U V^T to each weight matrix, a rank-B matrix
    (U = eps a c f_k(H_l)^T, V = G_{l+1}^T). Instead of writing W every step
    we keep W_eff = W + U V^T with up to ``rank`` steps of columns in U, V,
    and use

        x W_eff = x W + (x U) V^T,        G W_eff^T = G W^T + (G V) U^T,

    so a step reads each W twice (forward, backward) and writes it once per
    ``rank`` steps, in one matrix product. Memory traffic per step drops from
    about six N^2 passes (read, write a gradient, update) to about two.
    """
    R, N, L, B = state.R, state.N, model.L, batch
    cap = rank * B
    kw = {"dtype": state.W[0].dtype, "device": state.W[0].device}
    p = [W.shape[-1] for W in state.W]
    Wk = [[W[..., k] for k in range(W.shape[-1])] for W in state.W]
    U = [[torch.empty(R, N, cap, **kw) for _ in range(pl)] for pl in p]
    V = [[torch.empty(R, N, cap, **kw) for _ in range(pl)] for pl in p]
    m = 0

    def flush():
        nonlocal m
        if m:
            for l in range(L - 1):
                for k in range(p[l]):
                    Wk[l][k].baddbmm_(U[l][k][:, :, :m], V[l][k][:, :, :m].transpose(1, 2))
        m = 0

    for step in range(n_steps + 1):
        if step in steps:
            flush()
            rec(state, step * eps)
        if step == n_steps:
            break
        idx = torch.multinomial(model.P.expand(R, -1), B, replacement=True, generator=g)
        X, Y = model.X[idx], model.Y[idx]

        # Forward through W_eff.
        h = model.input_states(X, state.theta0)
        feats = []
        for l in range(L - 1):
            F = model.features[l](h)
            feats.append(F)
            nxt = 0
            for k in range(p[l]):
                nxt = nxt + torch.bmm(F[k], Wk[l][k])
                if m:
                    nxt = nxt + torch.bmm(torch.bmm(F[k], U[l][k][:, :, :m]),
                                          V[l][k][:, :, :m].transpose(1, 2))
            h = nxt / N
        sL, dL = model.sigmaL(h, *[state.thetaL[:, None, :, k]
                                   for k in range(state.thetaL.shape[-1])])
        yhat = sL.mean(dim=2)
        if check_every and step % check_every == 0:
            _check_outputs(yhat, state, step)

        # Backward through W_eff, and the new factor columns.
        c = model.dloss(Y, yhat) * (eps * -model.alpha(step * eps) / B)
        G = dL
        new = []
        for l in range(L - 2, -1, -1):
            F = feats[l]
            new.append((l, [F[k] * c[:, :, None] for k in range(p[l])], G))
            if l == 0:
                break
            back = 0
            for k in range(p[l]):
                gw = torch.bmm(G, Wk[l][k].transpose(1, 2))
                if m:
                    gw = gw + torch.bmm(torch.bmm(G, V[l][k][:, :, :m]),
                                        U[l][k][:, :, :m].transpose(1, 2))
                back = back + F[p[l] + k] * gw
            G = back / N
        for l, us, v in new:
            for k in range(p[l]):
                U[l][k][:, :, m:m + B] = us[k].transpose(1, 2)
                V[l][k][:, :, m:m + B] = v.transpose(1, 2)
        m += B
        if m + B > cap:
            flush()
    flush()


_TABLEAUS = {
    "euler": ([], [1.0]),
    "heun": ([[1.0]], [0.5, 0.5]),
    "rk4": ([[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
}
_NODES = {"euler": [0.0], "heun": [0.0, 1.0], "rk4": [0.0, 0.5, 0.5, 1.0]}


def explicit_step(f, y, t, dt, method):
    """One explicit Runge-Kutta step for a list of tensors ``y``; ``f(y, t)``."""
    if method not in _TABLEAUS:
        raise InstanceError(f"method={method!r}; use one of {sorted(_TABLEAUS)}")
    a, b = _TABLEAUS[method]
    c = _NODES[method]
    ks = []
    for s in range(len(b)):
        ys = y
        if s:
            ys = [yi + dt * sum(a[s - 1][j] * ks[j][i] for j in range(s)
                                if a[s - 1][j])
                  for i, yi in enumerate(y)]
        ks.append(f(ys, t + c[s] * dt))
    return [yi + dt * sum(bj * k[i] for bj, k in zip(b, ks)) for i, yi in enumerate(y)]


def gradient_flow(model, state, T, dt, method="rk4", record_steps=None,
                  record_weights=False, max_weight=None):
    """Population gradient flow dW/dt = b^N(W, t) on [0, T] with steps ``dt``.

    ``max_weight``: stop with :class:`~mfdeep.errors.DivergenceError` when a
    weight leaves ``|w| <= max_weight`` (checked every step).
    Returns the final state (a new object) and a :class:`Record`.
    """
    model.check_state(state)
    if not (T > 0 and dt > 0):
        raise InstanceError(f"T={T!r} and dt={dt!r} must be positive")
    n_steps = max(1, round(T / dt))
    dt = T / n_steps
    rec = _Recorder(model, record_weights)
    steps = _steps_set(record_steps, n_steps)
    current = state.clone()
    start = time.perf_counter()

    def f(W, t):
        s = type(current)(current.theta0, W, current.thetaL)
        return population_drift(model, s, t)[0]

    for k in range(n_steps + 1):
        if k in steps:
            rec(current, k * dt)
        if k == n_steps:
            break
        current.W = explicit_step(f, current.W, k * dt, dt, method)
        check_finite(current, k + 1, max_abs=max_weight)
    return current, rec.result(steps=n_steps, seconds=time.perf_counter() - start)

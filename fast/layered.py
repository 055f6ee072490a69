"""The layered MV solver and ideal particles, in torch (MODEL.md sections 3-4).

Limit state on atomic laws (atoms ``A0`` (n0, p0) of nu0, ``M[l-1]`` (n_l, p)
of m_l, ``AL`` (nL, pL) of nuL; weights ``q0``, ``qm[l-1]``, ``qL``):

* L >= 3: ``W1`` (n0, n1, p) -- Gamma_1(t; theta0, w0) at atom pairs;
  ``W[l-1]`` (n_l, p) for 2 <= l <= L-2; ``WL`` (n_{L-1}, nL, p);
* L = 2: ``W1`` (n0, n1, nL, p).

Mean fields on the n data points: ``hbar[l]`` (n,) for 2 <= l <= L-1,
``hL`` (n, nL), ``ybar`` (n,), ``gbar[l]`` (n,), ``gL`` (n, nL).

Ideal particles (:func:`ideal_particles`) follow the same flow maps from a
finite network's own theta0(i), W(i, j)(0), thetaL(j). The output-layer flow
depends on the whole conditional law of W_{L-1} given thetaL(j), so for every
network output neuron j a *cloud* of m_{L-1} atoms (for L = 2: nu0 x m_1
atom pairs) is flowed with the feature thetaL(j); the particles are driven by
the mean fields of their cloud. Everything is one ODE system, integrated by
the same Runge-Kutta steps. Source: proofs_notes/03_layered.md, 04_mv_picard.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from mfdeep.errors import InstanceError, NonFiniteError
from mfdeep.fast.network import NetworkState
from mfdeep.fast.train import explicit_step


def _split(x):
    return [x[..., k] for k in range(x.shape[-1])]


@dataclass
class AtomicLimit:
    """Atoms, weights and initial layered state of an atomic instance."""

    A0: torch.Tensor
    q0: torch.Tensor
    M: list
    qm: list
    AL: torch.Tensor
    qL: torch.Tensor

    def initial(self):
        L = len(self.M) + 1
        n0, nL = self.A0.shape[0], self.AL.shape[0]
        if L == 2:
            n1, p = self.M[0].shape
            return [self.M[0][None, :, None, :].expand(n0, n1, nL, p).clone()]
        out = [self.M[0][None].expand(n0, *self.M[0].shape).clone()]
        out += [m.clone() for m in self.M[1:-1]]
        out.append(self.M[-1][:, None, :].expand(-1, nL, -1).clone())
        return out

    def key_weights(self):
        """Probability of each key of each trained layer, shaped like the
        layer's state without its last (weight coordinate) axis."""
        L, q0, qm, qL = len(self.M) + 1, self.q0, self.qm, self.qL
        if L == 2:
            return [q0[:, None, None] * qm[0][None, :, None] * qL[None, None, :]]
        out = [q0[:, None] * qm[0][None, :]]
        out += [qm[l - 1] for l in range(2, L - 1)]
        out.append(qm[L - 2][:, None] * qL[None, :])
        return out

    def movement(self, W, W0):
        """Per layer, E|Wbar(t) - Wbar(0)| under the atomic law (mean over
        weight coordinates): the statistic of ``CouplingResult.moved``."""
        return [((w - w0).abs().mean(dim=-1) * q).sum()
                for w, w0, q in zip(W, W0, self.key_weights())]


def atomic_limit(model, instance=None):
    """Tensors of the atomic laws of ``instance`` (default: the model's own)."""
    instance = model.instance if instance is None else instance
    kw = {"dtype": model.dtype, "device": model.device}

    def tensors(law):
        pts, w = law.as_arrays()
        return torch.tensor(pts, **kw), torch.tensor(w / w.sum(), **kw)

    nu0, m, nuL = instance.atomic_laws()
    A0, q0 = tensors(nu0)
    AL, qL = tensors(nuL)
    Ms = [tensors(law) for law in m]
    return AtomicLimit(A0, q0, [a for a, _ in Ms], [w for _, w in Ms], AL, qL)


class MeanFields(dict):
    """hbar, hL, ybar, gbar, gL, e (= P dl) on the data points, as a dict."""


def mean_fields(model, lim, W, t=0.0):
    """Forward and backward mean fields of the layered state ``W``; also the drift.

    Returns ``(fields, b)`` with ``b`` the layered drift, shaped like ``W``.
    """
    L, X = model.L, model.X
    a = -model.alpha(t)
    h1 = model.sigma0(*[X[:, None, k] for k in range(X.shape[1])], *_split(lim.A0[None]))
    f = MeanFields()
    if L == 2:
        J1 = model.sigma[0](h1[:, :, None, None], *_split(W[0][None]))
        h2 = torch.einsum("nabj,a,b->nj", J1[0], lim.q0, lim.qm[0])
        sL, gL = model.sigmaL(h2, *_split(lim.AL[None]))
        ybar = sL @ lim.qL
        e = model.P * model.dloss(model.Y, ybar)
        b1 = torch.stack([torch.einsum("n,nj,nabj->abj", e, gL, d) for d in J1[2:]], -1)
        f.update(hL=h2, ybar=ybar, gL=gL, e=e, h1=h1)
        return f, [a * b1]

    # Forward.
    J = {1: model.sigma[0](h1[:, :, None], *_split(W[0][None]))}
    hbar = {2: torch.einsum("nab,a,b->n", J[1][0], lim.q0, lim.qm[0])}
    for l in range(2, L - 1):
        J[l] = model.sigma[l - 1](hbar[l][:, None], *_split(W[l - 1][None]))
        hbar[l + 1] = J[l][0] @ lim.qm[l - 1]
    J[L - 1] = model.sigma[L - 2](hbar[L - 1][:, None, None], *_split(W[L - 2][None]))
    hL = torch.einsum("nij,i->nj", J[L - 1][0], lim.qm[L - 2])
    sL, gL = model.sigmaL(hL, *_split(lim.AL[None]))
    ybar = sL @ lim.qL

    # Backward.
    gbar = {L - 1: torch.einsum("nij,nj,i,j->n", J[L - 1][1], gL, lim.qm[L - 2], lim.qL)}
    for l in range(L - 2, 1, -1):
        gbar[l] = (J[l][1] @ lim.qm[l - 1]) * gbar[l + 1]

    # Drift.
    e = model.P * model.dloss(model.Y, ybar)
    b = [torch.stack([torch.einsum("n,nab->ab", e * gbar[2], d) for d in J[1][2:]], -1)]
    for l in range(2, L - 1):
        b.append(torch.stack([(e * gbar[l + 1]) @ d for d in J[l][2:]], -1))
    b.append(torch.stack([torch.einsum("n,nj,nij->ij", e, gL, d)
                          for d in J[L - 1][2:]], -1))
    f.update(hbar=hbar, hL=hL, ybar=ybar, gbar=gbar, gL=gL, e=e, h1=h1)
    return f, [a * x for x in b]


def layered_drift(model, W, t=0.0, lim=None):
    """The layered drift only (see :func:`mean_fields`)."""
    lim = atomic_limit(model) if lim is None else lim
    return mean_fields(model, lim, W, t)[1]


@dataclass
class LimitSolution:
    """Solution of the layered MV system on [0, T].

    ``times``; ``ybar`` (n_rec, n) outputs on the data; ``risk`` (n_rec,);
    ``states`` list over records of the layered state (if recorded); ``stats``.
    """

    times: list
    ybar: torch.Tensor
    risk: torch.Tensor
    states: list | None
    stats: dict = field(default_factory=dict)


def _risk(model, ybar):
    return (model.P * model.loss(model.Y, ybar)).sum()


def solve_limit(model, T, dt=0.01, method="rk4", rtol=None, record_times=None,
                record_states=False, lim=None, max_steps=1_000_000):
    """Integrate the layered MV system from the product law on [0, T].

    Fixed steps ``dt`` of ``method`` ("euler", "heun", "rk4"), or, when
    ``rtol`` is given, adaptive RK4 with step doubling: a step is accepted
    when the difference between one step of h and two of h/2 is at most
    ``rtol`` times (1 + |state|) in max norm; the local-extrapolated value is
    kept.
    """
    if not (T > 0 and dt > 0):
        raise InstanceError(f"T={T!r} and dt={dt!r} must be positive")
    lim = atomic_limit(model) if lim is None else lim
    times = sorted(set([0.0, float(T)] + [float(t) for t in (record_times or [])]))
    if times[0] < 0 or times[-1] > T:
        raise InstanceError(f"record_times must lie in [0, T={T}]")
    W = lim.initial()

    def f(y, t):
        return mean_fields(model, lim, y, t)[1]

    out_t, out_y, out_r, out_s = [], [], [], []
    t, steps, rejected = 0.0, 0, 0
    h = dt
    start = time.perf_counter()
    for target in times:
        while target - t > 1e-14 * max(1.0, T):
            step = min(h, target - t)
            if rtol is None:
                W = explicit_step(f, W, t, step, method)
                t += step
            else:
                full = explicit_step(f, W, t, step, "rk4")
                half = explicit_step(f, W, t, step / 2, "rk4")
                half = explicit_step(f, half, t + step / 2, step / 2, "rk4")
                err = max(float(((u - v).abs() / (1 + v.abs())).max())
                          for u, v in zip(full, half))
                if err <= rtol:
                    W = [v + (v - u) / 15 for u, v in zip(full, half)]
                    t += step
                else:
                    rejected += 1
                h = step * min(4.0, max(0.2, 0.9 * (rtol / max(err, 1e-300)) ** 0.2))
            steps += 1
            if steps > max_steps:
                raise InstanceError(f"more than max_steps={max_steps} steps")
            if not all(bool(torch.isfinite(w).all()) for w in W):
                bad = next(i for i, w in enumerate(W) if not torch.isfinite(w).all())
                raise NonFiniteError(f"non-finite limit state at step {steps}, "
                                     f"t={t:.4g}, layer {bad + 1}")
        fields, _ = mean_fields(model, lim, W, t)
        out_t.append(t)
        out_y.append(fields["ybar"])
        out_r.append(_risk(model, fields["ybar"]))
        if record_states:
            out_s.append([w.clone() for w in W])
    return LimitSolution(out_t, torch.stack(out_y), torch.stack(out_r),
                         out_s if record_states else None,
                         {"steps": steps, "rejected": rejected,
                          "seconds": time.perf_counter() - start})


def _particle_drift(model, lim, fields, net, P, C, t):
    """Drift of the particles ``P`` (list per layer) and output clouds ``C``."""
    L, X = model.L, model.X
    a = -model.alpha(t)
    e = fields["e"]
    R, N = net.theta0.shape[:2]
    h1 = model.input_states(X.expand(R, -1, -1), net.theta0)  # (R, n, N)
    thL = _split(net.thetaL[:, :, None])  # features per output neuron j

    def last_layer_g(hin_of_cloud):
        # Output-neuron states under each cloud, and their backward signal.
        hL = hin_of_cloud  # (R, n, N)
        sL, gL = model.sigmaL(hL, *[x[:, None, :, 0] for x in thL])
        return gL

    if L == 2:
        # Cloud C[0]: (R, N, n0, n1, p) -- pairs (theta0 atom, w atom) at thetaL(j).
        J = model.sigma[0](fields["h1"][None, :, None, :, None],
                           *_split(C[0][:, None]))  # (R, n, N, n0, n1)
        hj = torch.einsum("rnjab,a,b->rnj", J[0], lim.q0, lim.qm[0])
        gj = last_layer_g(hj)  # (R, n, N)
        dC = torch.stack([torch.einsum("n,rnj,rnjab->rjab", e, gj, d)
                          for d in J[2:]], -1)
        Jp = model.sigma[0](h1[:, :, :, None], *_split(P[0][:, None]))  # (R,n,N,N)
        dP = torch.stack([torch.einsum("n,rnj,rnij->rij", e, gj, d) for d in Jp[2:]], -1)
        return [a * dP], [a * dC]

    hbar, gbar = fields["hbar"], fields["gbar"]
    dP = []
    # Layer 1: theta0(i)-dependent states, mean backward signal gbar_2.
    Jp = model.sigma[0](h1[:, :, :, None], *_split(P[0][:, None]))
    dP.append(torch.stack([torch.einsum("n,rnij->rij", e * gbar[2], d)
                           for d in Jp[2:]], -1))
    for l in range(2, L - 1):
        Jp = model.sigma[l - 1](hbar[l][None, :, None, None], *_split(P[l - 1][:, None]))
        dP.append(torch.stack([torch.einsum("n,rnij->rij", e * gbar[l + 1], d)
                               for d in Jp[2:]], -1))
    # Output layer: the cloud C[0] (R, N, n_{L-1}, p) of m_{L-1} atoms at thetaL(j).
    s_last = model.sigma[L - 2]
    Jc = s_last(hbar[L - 1][None, :, None, None], *_split(C[0][:, None]))  # (R,n,N,nm)
    hj = Jc[0] @ lim.qm[L - 2]  # (R, n, N)
    gj = last_layer_g(hj)
    dC = torch.stack([torch.einsum("n,rnj,rnjk->rjk", e, gj, d) for d in Jc[2:]], -1)
    Jp = s_last(hbar[L - 1][None, :, None, None], *_split(P[L - 2][:, None]))
    dP.append(torch.stack([torch.einsum("n,rnj,rnij->rij", e, gj, d)
                           for d in Jp[2:]], -1))
    return [a * x for x in dP], [a * dC]


@dataclass
class CouplingResult:
    """Ideal particles next to the network's gradient flow.

    ``times``; ``gap[l-1]`` (n_rec, R): E|W - Wbar| over edges (mean absolute
    difference per coordinate) of layer l; ``moved[l-1]`` (n_rec, R): E|W(t) -
    W(0)| of the network; ``moved_ideal``; ``output_gap`` (n_rec, R): max over
    data of |yhat - ybar|; ``risk_gap`` (n_rec, R); ``risk`` (n_rec, R) and
    ``risk_limit`` (n_rec,): the network's and the limit's risk;
    ``outputs`` (n_rec, R, n) and ``outputs_limit`` (n_rec, n): yhat and ybar
    on the data points; ``final``: the weights at T, ``{"network": [...],
    "particles": [...], "initial": [...]}`` (lists over layers of (R, N, N, p)
    tensors); ``stats``.
    """

    times: list
    gap: list
    moved: list
    moved_ideal: list
    output_gap: torch.Tensor
    risk_gap: torch.Tensor
    risk: torch.Tensor = None
    risk_limit: torch.Tensor = None
    outputs: torch.Tensor = None
    outputs_limit: torch.Tensor = None
    final: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


def ideal_particles(model, net, T, dt=0.05, method="rk4", record_times=None, lim=None,
                    max_weight=None):
    """Integrate the network's gradient flow and its ideal particles together.

    Network and particles start from the same draws ``net`` (a
    :class:`NetworkState`); the limit is solved on the atoms of the model's
    instance (which must be atomic, e.g. ``instance.atomic(order)``); all
    three use the same Runge-Kutta steps. ``record_times`` must lie in
    [0, T]; each is rounded to the nearest step. ``max_weight``: stop with
    :class:`~mfdeep.errors.DivergenceError` when a network weight leaves
    ``|w| <= max_weight``. Returns a :class:`CouplingResult`.
    """
    from mfdeep.fast.network import check_finite, outputs, population_drift

    model.check_state(net)
    if not (T > 0 and dt > 0):
        raise InstanceError(f"T={T!r} and dt={dt!r} must be positive")
    lim = atomic_limit(model) if lim is None else lim
    L = model.L
    R, N = net.R, net.N
    n_steps = max(1, round(T / dt))
    dt = T / n_steps
    outside = [t for t in (record_times or []) if not 0 <= float(t) <= T]
    if outside:
        raise InstanceError(f"record_times {outside} outside [0, T={T}]")
    rec_steps = sorted({0, n_steps} | {round(float(t) / dt) for t in (record_times or [])})

    # Initial clouds: conditional atoms at each network output feature.
    if L == 2:
        n0, (n1, p) = lim.A0.shape[0], lim.M[0].shape
        cloud = lim.M[0][None, None, None].expand(R, N, n0, n1, p).clone()
    else:
        cloud = lim.M[-1][None, None].expand(R, N, *lim.M[-1].shape).clone()
    W0 = [w.clone() for w in net.W]
    y = lim.initial() + [cloud] + [w.clone() for w in net.W] + [w.clone() for w in W0]
    nl, npart = (1 if L == 2 else L - 1), L - 1

    def f(state, t):
        Wl = state[:nl]
        C = state[nl:nl + 1]
        Pp = state[nl + 1:nl + 1 + npart]
        Wn = state[nl + 1 + npart:]
        fields, bl = mean_fields(model, lim, Wl, t)
        dP, dC = _particle_drift(model, lim, fields, net, Pp, C, t)
        bn = population_drift(model, NetworkState(net.theta0, Wn, net.thetaL), t)[0]
        return bl + dC + dP + bn

    gap, moved, moved_i, og, rg, times = [], [], [], [], [], []
    risk_n, risk_l, out_n, out_l = [], [], [], []
    start = time.perf_counter()
    for k in range(n_steps + 1):
        if k in rec_steps:
            Wl = y[:nl]
            Pp = y[nl + 1:nl + 1 + npart]
            Wn = y[nl + 1 + npart:]
            fields, _ = mean_fields(model, lim, Wl, k * dt)
            sn = NetworkState(net.theta0, Wn, net.thetaL)
            yhat = outputs(model, sn)
            times.append(k * dt)
            gap.append([(u - v).abs().mean(dim=(1, 2, 3)) for u, v in zip(Wn, Pp)])
            moved.append([(u - v).abs().mean(dim=(1, 2, 3)) for u, v in zip(Wn, W0)])
            moved_i.append([(u - v).abs().mean(dim=(1, 2, 3)) for u, v in zip(Pp, W0)])
            og.append((yhat - fields["ybar"]).abs().max(dim=1).values)
            rn = (model.P * model.loss(model.Y, yhat)).sum(dim=1)
            rl = _risk(model, fields["ybar"])
            rg.append((rn - rl).abs())
            risk_n.append(rn)
            risk_l.append(rl)
            out_n.append(yhat)
            out_l.append(fields["ybar"])
        if k == n_steps:
            break
        y = explicit_step(f, y, k * dt, dt, method)
        for i, block in enumerate(y):
            if not bool(torch.isfinite(block).all()):
                what = ("limit" if i < nl else "output clouds" if i == nl
                        else "ideal particles" if i < nl + 1 + npart else "network")
                layer = (i + 1 if i < nl else 1 if i == nl
                         else i - nl if i < nl + 1 + npart else i - nl - npart)
                raise NonFiniteError(f"non-finite {what} at step {k + 1}, layer {layer}; "
                                     "lower dt")
        if max_weight is not None:
            check_finite(NetworkState(net.theta0, y[nl + 1 + npart:], net.thetaL),
                         k + 1, where="network weights", max_abs=max_weight)

    def by_layer(rows):
        return [torch.stack([r[l] for r in rows]) for l in range(L - 1)]

    final = {"network": y[nl + 1 + npart:], "particles": y[nl + 1:nl + 1 + npart],
             "initial": W0}
    return CouplingResult(times, by_layer(gap), by_layer(moved), by_layer(moved_i),
                          torch.stack(og), torch.stack(rg), torch.stack(risk_n),
                          torch.stack(risk_l), torch.stack(out_n), torch.stack(out_l),
                          final, {"steps": n_steps, "dt": dt,
                                  "seconds": time.perf_counter() - start})

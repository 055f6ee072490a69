"""Properties of the model, as functions users can run on their own instances.

Each ``check_*`` computes something that can fail, raises ``AssertionError``
with the measured figure when it does, and returns the figures as a dict
otherwise. They pit the exact reference against itself (identities between
independently coded drifts) or against the fast backend.

==========  ============================================================
claim       check
==========  ============================================================
C1          :func:`check_autograd_scaling`
C2          :func:`check_fast_layered_drift`
C3          :func:`check_network_path_identity`,
            :func:`check_layered_path_identity`
C5, C6      :func:`check_picard_fixed_point`
C7          :func:`check_factorisation`
C11         :func:`check_discontinuity_off_layered`
==========  ============================================================
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

from mfdeep.reference.bound import Bound
from mfdeep.reference.contexts import ExactOps, MPOps
from mfdeep.reference.layered import (initial_layered_state, layered_drift,
                                      layered_to_path_law)
from mfdeep.reference.gradient import risk_gradient
from mfdeep.reference.network import network_drift, sample_network
from mfdeep.reference.path import PathLaw, empirical_path_law, path_drift


class PropertyFailure(AssertionError):
    """A property of the model does not hold; the message gives the figures.

    Raised explicitly (not with ``assert``), so checks fail under ``python -O``.
    """


def _require(condition, message):
    if not condition:
        raise PropertyFailure(message)


def _perturbed_state(B, instance, ops, seed):
    state = initial_layered_state(B, *instance.atomic_laws())
    rng = random.Random(seed)
    return state.replace_weights([
        {k: tuple(v + ops.convert(Fraction(rng.randint(-4, 4), 8)) for v in w)
         for k, w in layer.items()} for layer in state.W])


def check_network_path_identity(instance, N=2, seed=0):
    """C3: the path drift of a network's empirical law is the network's drift.

    Exact rational equality; ``instance`` must be polynomial.
    """
    ops = ExactOps()
    B = Bound(instance, ops)
    net = sample_network(instance, N, seed).convert(ops)
    b, _ = network_drift(B, net)
    law = empirical_path_law(net, ops)
    bp, _ = path_drift(B, law)
    mismatches = sum(bp[a][l - 1] != b[l - 1][lab[l][0]][lab[l][1]]
                     for a, lab in enumerate(law.labels) for l in range(1, instance.L))
    _require(mismatches == 0, f"{mismatches} path atoms disagree with the network drift")
    return {"path_atoms": len(law), "mismatches": 0}


def check_layered_path_identity(instance, seed=0):
    """C3: on a layered law, the general path drift equals the layered drift (exact)."""
    ops = ExactOps()
    B = Bound(instance, ops)
    state = _perturbed_state(B, instance, ops, seed)
    bl, _ = layered_drift(B, state)
    law = layered_to_path_law(state, ops)
    bp, _ = path_drift(B, law)
    mismatches = sum(bp[a][l - 1] != bl[l - 1][lab[l][1]]
                     for a, lab in enumerate(law.labels) for l in range(1, instance.L))
    _require(mismatches == 0, f"{mismatches} path atoms disagree with the layered drift")
    return {"path_atoms": len(law), "mismatches": 0}


def check_factorisation(instance, degree=3):
    """C7: the path system from the product law stays layered (exact series)."""
    from mfdeep.reference.factorisation import (compare_with_layered,
                                                dependence_report, product_report)
    from mfdeep.reference.mv import LayeredSystem, PathSystem, taylor_picard

    ops = ExactOps()
    P, Y = taylor_picard(PathSystem, instance, degree, ops)
    S, YL = taylor_picard(LayeredSystem, instance, degree, ops)
    same = lambda u, v: 0 if u.c == v.c else 1  # noqa: E731
    dep = dependence_report(P, Y, same)["max_within_key_distance"]
    cmp = compare_with_layered(P, Y, S, YL, same)["max_path_vs_layered_distance"]
    prod = product_report(P, Y, lambda s: tuple(s.c) if hasattr(s, "c") else s)
    _require(dep == 0, "a weight's trajectory depends on more than its layered key")
    _require(cmp == 0, "the path system's trajectories differ from the layered solution")
    _require(prod["max_joint_minus_product"] == 0, (
        f"path law is not the product of its blocks: {prod}"))
    return {"degree": degree, "path_atoms": len(P.law0)}


def check_exact_gradient_scaling(instance, N=2, seed=0, dps=40):
    """C1 in reference numbers: -alpha N^2 dR_N/dW equals the backprop drift.

    The gradient comes from forward-mode differentiation of the forward pass
    (:func:`mfdeep.reference.gradient.risk_gradient`), the drift from the
    backward recursion (:func:`mfdeep.reference.network.network_drift`): two
    computations that share only the forward pass. Polynomial instances:
    exact rational equality. Others: mpmath at ``dps`` digits, every
    difference at most 10^(10 - dps) times max(1, largest drift).
    """
    exact = instance.is_polynomial
    ops = ExactOps() if exact else MPOps(dps)
    B = Bound(instance, ops)
    net = sample_network(instance, N, seed).convert(ops)
    b, _ = network_drift(B, net)
    grad = risk_gradient(instance, net, ops)
    a = -B.alpha(0) * N**2
    pairs = [(u, a * v) for bl, gl in zip(b, grad) for br, gr in zip(bl, gl)
             for bc, gc in zip(br, gr) for u, v in zip(bc, gc)]
    if exact:
        mismatches = sum(u != v for u, v in pairs)
        _require(mismatches == 0,
                 f"{mismatches} of {len(pairs)} weight coordinates: the backprop drift "
                 "differs from -alpha N^2 grad R_N (exact rationals)")
        return {"number_system": "exact", "coordinates": len(pairs), "max_error": 0.0}
    scale = max([1.0] + [abs(float(u)) for u, _ in pairs])
    err = max(float(abs(u - v)) for u, v in pairs) / scale
    tol = 10.0 ** (10 - dps)
    _require(err <= tol, f"relative error {err:.3e} > {tol:.0e} at {dps} digits")
    return {"number_system": f"mpmath {dps} digits", "coordinates": len(pairs),
            "max_error": err}


def check_autograd_scaling(instance, N=4, R=2, seed=0, rtol=1e-12):
    """C1: N^2 (-alpha) autograd gradient of R_N equals the explicit drift (float64)."""
    import torch

    from mfdeep.fast.model import TorchModel
    from mfdeep.fast.network import NetworkState, draw_network, forward, population_drift

    model = TorchModel(instance)
    net = draw_network(instance, N, R=R, seed=seed)
    b, _ = population_drift(model, net)
    W = [w.clone().requires_grad_(True) for w in net.W]
    _, yhat, _ = forward(model, NetworkState(net.theta0, W, net.thetaL),
                         model.X.expand(R, -1, -1))
    risk = (model.P * model.loss(model.Y.expand(R, -1), yhat)).sum()
    grads = torch.autograd.grad(risk, W)
    scale = max(float(x.abs().max()) for x in b) or 1.0
    err = max(float((g * (-model.alpha(0.0)) * N**2 - x).abs().max())
              for g, x in zip(grads, b)) / scale
    _require(err <= rtol, f"relative error {err:.3e} > {rtol:.0e}")
    return {"relative_error": err}


def check_fast_layered_drift(instance, seed=0, rtol=1e-10):
    """C2: the fast float64 layered drift equals the 30-digit reference drift."""
    from mfdeep.claims import _layered_to_tensors
    from mfdeep.fast.layered import atomic_limit
    from mfdeep.fast.layered import layered_drift as fast_drift
    from mfdeep.fast.model import TorchModel

    ops = MPOps(30)
    B = Bound(instance, ops)
    state = _perturbed_state(B, instance, ops, seed)
    ref, _ = layered_drift(B, state)
    model = TorchModel(instance)
    fast = fast_drift(model, _layered_to_tensors(state, instance.L, model), 0.0,
                      atomic_limit(model))
    # Errors are measured against max(1, largest drift entry): every term of
    # the drift sums is O(1) on these instances, so float64 round-off is
    # O(eps) in absolute terms even where the exact drift is 0 (a relative
    # error would then compare round-off with round-off: the thorough
    # profile found such an instance).
    scale = max([1.0] + [abs(float(c)) for layer in ref for vec in layer.values()
                         for c in vec])
    worst = 0.0
    for l, layer in enumerate(ref):
        for key, vec in layer.items():
            for c, v in enumerate(vec):
                worst = max(worst, abs(float(fast[l][key + (c,)]) - float(v)) / scale)
    _require(worst <= rtol, f"relative error {worst:.3e} > {rtol:.0e}")
    return {"relative_error": worst}


def check_picard_fixed_point(instance, shift=0.5, n_grid=16, T=None, tol=None):
    """C5 and C6: Picard converges to a fixed point with round-off residual, and a
    start shifted by ``shift`` reaches the same fixed point."""
    import torch

    from mfdeep.fast.layered import atomic_limit
    from mfdeep.fast.model import TorchModel
    from mfdeep.fast.picard import constant_flow, distance, picard

    model = TorchModel(instance)
    lim = atomic_limit(model)
    T = float(instance.T) if T is None else T
    tol = 1e3 * torch.finfo(model.dtype).eps if tol is None else tol
    a = picard(model, T, n_grid=n_grid, max_iter=80)
    start = [f + shift for f in constant_flow(lim.initial(), n_grid + 1)]
    b = picard(model, T, n_grid=n_grid, max_iter=80, start=start)
    _require(a.converged and b.converged, "Picard iteration did not converge")
    _require(a.residual <= tol, f"residual {a.residual:.3e} > {tol:.1e}")
    gap = distance(lim, a.flow, b.flow, a.times)
    _require(gap <= tol, f"two starts reach fixed points {gap:.3e} apart")
    return {"residual": a.residual, "uniqueness_gap": gap,
            "iterations": a.stats["iterations"]}


def discontinuity_example(n, ops=None):
    """Drift b_2 at the '+' atom of the two-atom law mu_n of proofs_notes 06 §6.5.

    mu_n has atoms (theta0, w1, w2, thetaL) = (1, +-1, +-1/n, 1), each of
    probability 1/2; mu_0 (n = None) has w2 = 0. Conditioning on values:
    labels are the coordinate values themselves. Maps w tanh h (inner),
    theta x (input), theta tanh h (output); data (1, 1); alpha = 1.
    """
    from mfdeep.model import Schedule, data_set, get_map, make_instance
    from mfdeep.model.laws import atoms
    from mfdeep.model.maps import make_map, theta_symbols, x_symbols

    ops = MPOps(30) if ops is None else ops
    x, th = x_symbols(1), theta_symbols(1)
    sigma0 = make_map("input", "theta_x", th[0] * x[0], x, th)
    inst = make_instance("c11", 3, sigma0, get_map("inner", "mlp"),
                         get_map("output", "theta_tanh"), data_set([[1]], [1]),
                         atoms([[1]]), atoms([[0]]), atoms([[1]]),
                         schedule=Schedule("constant"))
    B = Bound(inst, ops)
    w2 = Fraction(0) if n is None else Fraction(1, n)
    values = [(1, 1, w2, 1), (1, -1, -w2, 1)]
    conv = [tuple((ops.convert(v),) for v in atom) for atom in values]
    labels = [tuple(v for v in atom) for atom in values]
    law = PathLaw(labels, conv, [ops.convert(Fraction(1, 2))] * 2)
    b, _ = path_drift(B, law)
    return float(b[0][1][0])


def check_discontinuity_off_layered(ns=(10, 100, 1000), min_jump=0.5):
    """C11: drifts of laws mu_n -> mu (W_inf distance 1/n) stay away from b[mu]."""
    at_limit = discontinuity_example(None)
    values = {n: discontinuity_example(n) for n in ns}
    jumps = {n: abs(v - at_limit) for n, v in values.items()}
    _require(all(j >= min_jump for j in jumps.values()), (
        f"drifts {values} approach b[mu] = {at_limit}: no discontinuity seen"))
    return {"b_mu": at_limit, "b_mu_n": values, "W_inf": {n: 1 / n for n in ns}}


def _ranges(model, lim, flows, times):
    """Boxes of (h, w) values met along ``flows``: h ranges per edge layer
    (1 .. L, the last for the output map), w ranges per layer and coordinate."""
    import torch

    from mfdeep.fast.layered import mean_fields

    L = model.L
    h_lo, h_hi = [float("inf")] * L, [float("-inf")] * L

    def widen(l, x):
        h_lo[l] = min(h_lo[l], float(x.min()))
        h_hi[l] = max(h_hi[l], float(x.max()))

    for flow in flows:
        for m in range(len(times)):
            f, _ = mean_fields(model, lim, [g[m] for g in flow], float(times[m]))
            widen(0, f["h1"])
            if L > 2:
                for l in range(2, L):
                    widen(l - 1, f["hbar"][l])
            widen(L - 1, f["hL"])
    w_boxes = []
    for l in range(L - 1):
        coords = torch.stack([g[l] for g in flows])  # (flows, M+1, *keys, p)
        flat = coords.reshape(-1, coords.shape[-1])
        w_boxes.append([(float(flat[:, k].min()), float(flat[:, k].max()))
                        for k in range(flat.shape[1])])

    def pad(lo, hi):
        margin = 0.05 * (hi - lo) + 0.05
        return (lo - margin, hi + margin)

    return ([pad(a, b) for a, b in zip(h_lo, h_hi)],
            [[pad(a, b) for a, b in layer] for layer in w_boxes])


def _trapezoid_matrix(times):
    """Lower-triangular weights w_mj of the cumulative trapezoidal rule."""
    import torch

    t = times.double().cpu()
    h = t[1:] - t[:-1]
    W = torch.zeros(len(t), len(t), dtype=torch.float64)
    for m in range(1, len(t)):
        W[m, :m] += h[:m] / 2
        W[m, 1:m + 1] += h[:m] / 2
    return W


def check_contraction(instance, n_pairs=3, amplitude=0.1, lams=(0.0, 5.0, 40.0),
                      n_grid=16, seed=0, splits=32):
    """C4: measured d_lam(Psi G, Psi G') / d_lam(G, G') stays below the derived
    bound K * gain(lam) (gain = (1 - e^{-lam T}) / lam for the exact integral,
    its trapezoidal analogue here), with K certified on the box of (h, w)
    values that the compared flows visit. Also the Picard iterates' distances
    against (K T)^n / n!.

    ``instance`` must be atomic. Returns the worst ratio / bound.
    """
    import torch

    from mfdeep.fast.layered import atomic_limit
    from mfdeep.fast.model import TorchModel
    from mfdeep.fast.picard import distance, picard, picard_map, trapezoid_gain
    from mfdeep.reference.constants import contraction_constant

    model = TorchModel(instance)
    lim = atomic_limit(model)
    T = float(instance.T)
    base = picard(model, T, n_grid=n_grid, max_iter=100)
    times = base.times
    g = torch.Generator().manual_seed(seed)

    def perturbed():
        # Smooth in time, zero at t = 0, size ``amplitude``.
        out = []
        for f in base.flow:
            ramp = (times / T).reshape(-1, *([1] * (f.dim() - 1))).to(f.dtype)
            noise = 2 * torch.rand(f.shape, generator=g, dtype=f.dtype) - 1
            out.append(f + amplitude * noise * ramp)
        return out

    pairs = [(perturbed(), perturbed()) for _ in range(n_pairs)]
    flows = [f for pair in pairs for f in pair] + [base.flow]
    h_boxes, w_boxes = _ranges(model, lim, flows, times)
    AL = lim.AL
    theta_box = (float(AL.min()) - 1e-12, float(AL.max()) + 1e-12)
    K = contraction_constant(instance, h_boxes, w_boxes, theta_box, splits)

    worst, ratios = 0.0, []
    for a, b in pairs:
        pa, pb = picard_map(model, lim, a, times), picard_map(model, lim, b, times)
        for lam in lams:
            r = distance(lim, pa, pb, times, lam) / distance(lim, a, b, times, lam)
            bound = K.K * trapezoid_gain(times, lam)
            ratios.append({"lam": lam, "ratio": r, "bound": bound})
            worst = max(worst, r / bound)
    # Iterate bound for the discretised map: the exact-integral bound
    # (KT)^n/n! becomes || (K Wtrap)^n 1 ||_inf with Wtrap the trapezoidal
    # weight matrix (its diagonal h/2 makes it not nilpotent).
    d = base.successive
    Wt = _trapezoid_matrix(times)
    v = torch.ones(len(times), dtype=torch.float64)
    iterate, discrete, continuous = [], [], []
    for n in range(len(d)):
        iterate.append(d[n] / (d[0] * float(v.max())))
        discrete.append(d[0] * float(v.max()))
        continuous.append(d[0] * (K.K * T) ** n / math.factorial(n))
        v = K.K * (Wt @ v)
    _require(worst <= 1.0, f"measured contraction ratio exceeds the bound: {ratios}")
    _require(max(iterate) <= 1.0, "Picard distances exceed the iterate bound")
    return {"K": K.K, "K_layers": K.K_layers, "constants": K.constants,
            "ratios": ratios, "worst_ratio_over_bound": worst,
            "iterate_over_bound": max(iterate), "h_boxes": h_boxes, "T": T,
            "picard_distances": list(d), "iterate_bound_trapezoid": discrete,
            "iterate_bound_KT": continuous}


def check_nondegeneracy_bound(instance, t, n_times=21, splits=16):
    """C12, Proposition 6.5 of proofs_notes 06 §6.6, on the atomic limit.

    With beta_l = E|bbar_l(0; W0)| (the limit's initial speed) and
    c = A' V_0 + K V (constants of 06, K certified by Arb on the box the
    limit flow visits on [0, t]), the limit's movement must satisfy

        E|Wbar_l(s) - Wbar_l(0)| >= beta_l s - c s^2 / 2     for s in [0, t],

    checked at ``n_times`` times (Euclidean norm per weight, expectation
    under the atomic law). ``instance`` must be atomic. Also returns the
    movement the proposition guarantees, beta_l^2 / (2 c) at
    s = beta_l / c: positive beta_l for every layer is the theorem's
    non-degeneracy criterion.
    """
    import torch

    from mfdeep.fast.layered import atomic_limit, solve_limit
    from mfdeep.fast.model import TorchModel
    from mfdeep.reference.constants import contraction_constant

    model = TorchModel(instance)
    lim = atomic_limit(model)
    # The box the flow visits on [0, t], and the constants on it.
    times = [min(t, t * k / (n_times - 1)) for k in range(n_times)]
    sol = solve_limit(model, t, dt=min(0.05, t / (n_times - 1)), record_times=times,
                      record_states=True, lim=lim)
    L = model.L
    flow = [torch.stack([state[l] for state in sol.states]) for l in range(L - 1)]
    h_boxes, w_boxes = _ranges(model, lim, [flow], sol.times)
    theta_box = (float(lim.AL.min()) - 1e-12, float(lim.AL.max()) + 1e-12)
    cc = contraction_constant(instance, h_boxes, w_boxes, theta_box, splits)
    c = cc.constants
    B = {L: c["Ah"][L]}
    for l in range(L - 1, 1, -1):
        B[l] = c["Ah"][l] * B[l + 1]
    V0 = max(c["Lam0"] * c["Aw"][l] * B[l + 1] for l in range(1, L))
    V = c["A"] * V0
    sched = instance.schedule
    A_prime = 0.0 if sched.kind == "constant" else float(sched.alpha0 / sched.tau)
    curvature = A_prime * V0 + cc.K * V

    # The limit's initial speed, in the Euclidean norm per weight.
    q = lim.key_weights()
    beta = _initial_speed(model, lim, sol.states[0], q)

    # The bound is positive only on (0, 2 beta_l / c), usually far shorter
    # than t: sample that window densely (the constants hold on all of
    # [0, t], so on any part of it), and check there.
    s_end = min(t, 2 * max(beta) / curvature) if curvature > 0 else t
    window = sorted({min(s_end, s_end * k / (n_times - 1)) for k in range(n_times)}
                    | {min(s_end, b / curvature) for b in beta if curvature > 0})
    near = solve_limit(model, s_end, dt=min(0.05, s_end / (4 * (n_times - 1))),
                       record_times=window, record_states=True, lim=lim)
    moved = [[float((torch.linalg.vector_norm(W[l] - near.states[0][l], dim=-1)
                     * q[l]).sum()) for W in near.states] for l in range(L - 1)]
    bound = [[beta[l] * s - 0.5 * curvature * s * s for s in near.times]
             for l in range(L - 1)]
    informative = [sum(b > 0 for b in bound[l]) for l in range(L - 1)]
    _require(all(n > 0 for n, b in zip(informative, beta) if b > 0),
             f"no sampled time where the bound is positive (samples per layer "
             f"{informative}); the check would be vacuous")
    # Slack: float64 round-off of sums of order one.
    tol = 1e-12
    worst = max(bound[l][k] - moved[l][k]
                for l in range(L - 1) for k in range(len(near.times)))
    _require(worst <= tol,
             f"the limit moved {worst:.3e} less than Proposition 6.5 guarantees "
             f"(beta={beta}, c={curvature:.4g})")
    return {"beta": beta, "curvature": curvature, "K": cc.K, "V": V, "V0": V0,
            "A_prime": A_prime, "times": list(near.times), "moved": moved,
            "bound": bound, "informative_samples": informative,
            "guaranteed": [b * b / (2 * curvature) for b in beta],
            "worst_shortfall": worst}


def _initial_speed(model, lim, W0, q):
    """beta_l = E|bbar_l(0; W0)| per trained layer (Euclidean norm per weight)."""
    import torch

    from mfdeep.fast.layered import mean_fields

    _, b0 = mean_fields(model, lim, W0, 0.0)
    return [float((torch.linalg.vector_norm(b, dim=-1) * w).sum()) for b, w in zip(b0, q)]


def check_layered_lipschitz(instance, n_pairs=4, amplitude=0.2, seed=0, splits=16):
    """C11, the continuous half: on layered laws the drift is Lipschitz.

    For two layered states W, W' on the same atoms, proofs_notes 06 §6.5
    gives |bbar[mu](w) - bbar[mu'](w')| <= K max(|w - w'|, d_lay(mu, mu')),
    and the label coupling gives d_lay <= max over keys |w - w'|. So the
    largest per-key change of the drift is at most K times the largest
    per-key change of the weights, with K certified on the box both states
    visit. ``instance`` must be atomic.
    """
    import torch

    from mfdeep.fast.layered import atomic_limit, mean_fields
    from mfdeep.fast.model import TorchModel
    from mfdeep.reference.constants import contraction_constant

    model = TorchModel(instance)
    lim = atomic_limit(model)
    g = torch.Generator().manual_seed(seed)
    base = lim.initial()
    times = torch.zeros(1, dtype=model.dtype)
    worst, K = 0.0, None
    for _ in range(n_pairs):
        a = [w + amplitude * (2 * torch.rand(w.shape, generator=g, dtype=w.dtype) - 1)
             for w in base]
        b = [w + amplitude * (2 * torch.rand(w.shape, generator=g, dtype=w.dtype) - 1)
             for w in base]
        h_boxes, w_boxes = _ranges(model, lim, [[x[None] for x in a], [x[None] for x in b]],
                                   times)
        theta_box = (float(lim.AL.min()) - 1e-12, float(lim.AL.max()) + 1e-12)
        K = contraction_constant(instance, h_boxes, w_boxes, theta_box, splits).K
        ba = mean_fields(model, lim, a, 0.0)[1]
        bb = mean_fields(model, lim, b, 0.0)[1]
        db = max(float(torch.linalg.vector_norm(x - y, dim=-1).max()) for x, y in zip(ba, bb))
        dw = max(float(torch.linalg.vector_norm(x - y, dim=-1).max()) for x, y in zip(a, b))
        worst = max(worst, db / (K * dw))
    _require(worst <= 1.0, f"drift changed by {worst:.3f} x K x (weight change)")
    return {"worst_ratio_over_K": worst, "K_last": K}

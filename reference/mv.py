"""Solutions of the atomic MV problem: exact Taylor-Picard and a Taylor integrator.

An atomic MV problem is a finite ODE system dW/dt = b[mu_t](W) (MODEL.md
section 4). Two views of it:

* :class:`LayeredSystem` -- the layered flow maps Gamma_l, one trajectory per
  layered key (:mod:`.layered`);
* :class:`PathSystem` -- the general path system: one trajectory per path
  atom and trained coordinate, drift from :func:`.path.path_drift`. Solving
  it from the product law and finding it layered is claim C7.

Solvers, generic over both views and over the number system:

* :func:`taylor_picard` -- Picard iteration Gamma <- w0 + int_0^t b[Gamma] on
  power series truncated at degree n. Iterate k is exact through degree k
  (proofs_notes/04_mv_picard.md), so after n iterations the result is the
  degree-n Taylor polynomial of the MV solution; with exact rationals
  (:class:`~.contexts.ExactOps`) it is exact.
* :func:`taylor_integrate` -- the same series, recentred step by step, in
  mpmath (or Arb) numbers: a high-precision solution on [0, T] with an
  error estimate from the tail of each step's series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mfdeep.reference.bound import Bound
from mfdeep.reference.layered import initial_layered_state, layered_drift
from mfdeep.reference.path import PathLaw, path_drift, product_path_law
from mfdeep.reference.series import Series, SeriesOps, make_series


class LayeredSystem:
    """The layered MV system of an atomic instance, as a flat ODE system."""

    def __init__(self, instance, ops):
        self.instance, self.ops = instance, ops
        self.bound = Bound(instance, ops)
        nu0, m, nuL = instance.atomic_laws()
        self.state0 = initial_layered_state(self.bound, nu0, m, nuL)
        self.layout = [(l, k, c) for l in range(1, instance.L)
                       for k in self.state0.keys(l)
                       for c in range(len(self.state0.W[l - 1][k]))]

    def initial(self):
        return [self.state0.W[l - 1][k][c] for l, k, c in self.layout]

    def unflatten(self, flat):
        W = [dict() for _ in range(self.instance.L - 1)]
        for (l, k, c), v in zip(self.layout, flat):
            W[l - 1].setdefault(k, []).append(v)
        return self.state0.replace_weights(
            [{k: tuple(v) for k, v in layer.items()} for layer in W])

    def drift(self, flat, t):
        b, _ = layered_drift(self.bound, self.unflatten(flat), t)
        return [b[l - 1][k][c] for l, k, c in self.layout]


class PathSystem:
    """The general path MV system from the product law, as a flat ODE system.

    Every path atom carries its own trajectory for each trained coordinate;
    the labels (the atom indices of each factor) stay fixed.
    """

    def __init__(self, instance, ops):
        self.instance, self.ops = instance, ops
        self.bound = Bound(instance, ops)
        nu0, m, nuL = instance.atomic_laws()
        self.law0 = product_path_law(self.bound, nu0, m, nuL)
        L = instance.L
        self.layout = [(a, l, c) for a in range(len(self.law0))
                       for l in range(1, L) for c in range(len(self.law0.values[a][l]))]

    def initial(self):
        return [self.law0.values[a][l][c] for a, l, c in self.layout]

    def unflatten(self, flat):
        L = self.instance.L
        vals = [[list(v) for v in atom] for atom in self.law0.values]
        for (a, l, c), v in zip(self.layout, flat):
            vals[a][l][c] = v
        values = [tuple(tuple(v) for v in atom) for atom in vals]
        assert all(len(v) == L + 1 for v in values)
        return PathLaw(self.law0.labels, values, self.law0.probs)

    def drift(self, flat, t):
        b, _ = path_drift(self.bound, self.unflatten(flat), t)
        return [b[a][l - 1][c] for a, l, c in self.layout]


def _as_series(v, n):
    return v if isinstance(v, Series) else make_series([v], n)


def taylor_picard(system_cls, instance, degree, base, t0=None, y0=None, cache=None):
    """Degree-``degree`` Taylor polynomials of the MV solution around ``t0``.

    Parameters
    ----------
    system_cls : LayeredSystem or PathSystem
    instance : Instance with atomic laws
    degree : int
        Truncation degree n; the result is exact through degree n.
    base : ExactOps, MPOps or ArbOps
        Number system of the coefficients.
    t0, y0 : optional
        Expansion point (default 0) and the state there (default the initial
        weights).
    cache : dict, optional
        Systems already built, by degree (reused across calls).

    Returns
    -------
    system : the system built on degree-``degree`` series (``unflatten`` reads
        the state)
    Y : list of :class:`Series`, one per flat coordinate

    Notes
    -----
    Iterate k of the Picard map is exact through degree k, so iterate k is
    computed on series truncated at degree k: the n iterations cost about a
    third of n iterations at full degree.
    """
    cache = {} if cache is None else cache

    def system_of(k):
        if k not in cache:
            cache[k] = system_cls(instance, SeriesOps(base, k))
        return cache[k]

    t0 = base.rational(0) if t0 is None else t0
    start = system_of(degree).initial() if y0 is None else y0
    Y = list(start)
    with base.working():
        for k in range(1, degree + 1):
            system = system_of(k)
            t = system.ops.variable(t0)
            F = system.drift([_as_series(y, k) if not isinstance(y, Series)
                              else make_series(y.c, k) for y in Y], t)
            Y = [y + _as_series(f, k).integral() for y, f in zip(start, F)]
    return system_of(degree), Y


@dataclass
class TaylorSolution:
    """Result of :func:`taylor_integrate`.

    Attributes
    ----------
    times : list
        Step end points t_0 = 0 < t_1 < ... = T.
    states : list of list
        Flat state at each time.
    error_estimate : float
        Sum over steps of the largest tail estimate |c_{n-1}| h^{n-1} + |c_n| h^n.
    steps : int
    """

    times: list
    states: list
    error_estimate: float
    steps: int
    stats: dict = field(default_factory=dict)


def taylor_integrate(system_cls, instance, T, base, degree=12, tol=1e-20,
                     max_steps=10_000):
    """High-precision solution of the MV system on [0, T] by a Taylor method.

    Each step expands the solution in a degree-``degree`` series at the
    current point (:func:`taylor_picard`), picks the step h so that the last
    two terms are at most ``tol`` (in max over coordinates), and sums the
    series at h.

    Notes
    -----
    The error estimate is the sum of the per-step tails; it is an estimate,
    not a bound (tests check it against a tighter solve). For a certified
    enclosure use the Arb certificate of the property-suite issue.
    """
    t = base.rational(0)
    T = base.convert(T)
    y = None
    times, states, est = [t], [], 0.0
    steps = 0
    cache = {}
    with base.working():
        while float(T - t) > 0:
            steps += 1
            if steps > max_steps:
                raise RuntimeError(
                    f"taylor_integrate took more than {max_steps} steps before "
                    f"t={float(t)}; raise degree or tol"
                )
            system, Y = taylor_picard(system_cls, instance, degree, base, t0=t, y0=y,
                                      cache=cache)
            if y is None:
                states.append(system.initial())
            cn = max(abs(float(s.c[degree])) for s in Y)
            cn1 = max(abs(float(s.c[degree - 1])) for s in Y)
            h = float(T - t)
            for c, k in ((cn, degree), (cn1, degree - 1)):
                if c > 0:
                    h = min(h, (tol / (2 * c)) ** (1.0 / k))
            h_num = T - t if h >= float(T - t) else base.convert(h)
            y = [s(h_num) for s in Y]
            t = T if h_num is T - t else t + h_num
            hf = float(h_num)
            est += cn * hf**degree + cn1 * hf ** (degree - 1)
            times.append(t)
            states.append(y)
            if any(not math.isfinite(float(v)) for v in y):
                raise FloatingPointError(f"non-finite state at step {steps}, t={float(t)}")
    return TaylorSolution(times, states, est, steps)

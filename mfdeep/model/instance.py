"""Instances: everything that defines one network and its mean-field limit.

Notation (MODEL.md sections 1-4): ``L`` hidden layers; maps ``sigma0``
(input), ``sigma[l]`` for l = 1 .. L-1 (inner), ``sigmaL`` (output); laws
``nu0`` of theta0, ``m[l]`` of W_l(0), ``nuL`` of thetaL; the data law P;
the loss; the schedule alpha(t); the horizon T.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import sympy

from mfdeep.errors import InstanceError
from mfdeep.model.laws import AtomicLaw, Atoms, Gaussian, Uniform, atomic_law
from mfdeep.model.maps import EdgeMap
from mfdeep.model.numbers import to_fraction
from mfdeep.model.program import compile_expr

y_sym, yhat_sym, t_sym = sympy.symbols("y yhat t")


@dataclass(frozen=True)
class Loss:
    """Loss l(y, yhat) with its derivative in yhat compiled as a program.

    ``kind`` is ``"squared"`` (1/2 (y - yhat)^2) or ``"pseudo_huber"``
    (delta^2 (sqrt(1 + ((yhat - y)/delta)^2) - 1), with bounded derivative).
    """

    kind: str = "squared"
    delta: Fraction = Fraction(1)

    def __post_init__(self):
        if self.kind not in ("squared", "pseudo_huber"):
            raise InstanceError(
                f"loss.kind={self.kind!r} is unknown; use 'squared' or 'pseudo_huber'"
            )
        if self.delta <= 0:
            raise InstanceError(f"loss.delta={self.delta} must be positive")

    @property
    def expr(self):
        r = yhat_sym - y_sym
        if self.kind == "squared":
            return r**2 / 2
        d = sympy.Rational(self.delta.numerator, self.delta.denominator)
        return d**2 * (sympy.sqrt(1 + (r / d) ** 2) - 1)

    @property
    def value(self):
        return compile_expr(self.expr, (y_sym, yhat_sym))

    @property
    def d_yhat(self):
        """Program for d l / d yhat (y, yhat)."""
        return compile_expr(sympy.diff(self.expr, yhat_sym), (y_sym, yhat_sym))


@dataclass(frozen=True)
class Schedule:
    """Learning-rate schedule alpha(t).

    ``"constant"``: alpha(t) = alpha0. ``"decay"``: alpha(t) = alpha0 / (1 + t/tau),
    bounded with a bounded derivative on t >= 0.
    """

    kind: str = "constant"
    alpha0: Fraction = Fraction(1)
    tau: Fraction = Fraction(1)

    def __post_init__(self):
        if self.kind not in ("constant", "decay"):
            raise InstanceError(
                f"schedule.kind={self.kind!r} is unknown; use 'constant' or 'decay'"
            )
        if self.alpha0 <= 0 or self.tau <= 0:
            raise InstanceError(
                f"schedule alpha0={self.alpha0}, tau={self.tau} must be positive"
            )

    @property
    def expr(self):
        a = sympy.Rational(self.alpha0.numerator, self.alpha0.denominator)
        if self.kind == "constant":
            return a + 0 * t_sym
        tau = sympy.Rational(self.tau.numerator, self.tau.denominator)
        return a / (1 + t_sym / tau)

    @property
    def program(self):
        return compile_expr(self.expr, (t_sym,))


@dataclass(frozen=True)
class DataSet:
    """The data law P: points ``x`` (n, d_x), targets ``y`` (n,), weights (n,)."""

    law: AtomicLaw

    @property
    def d_x(self):
        return self.law.dim - 1

    @property
    def n(self):
        return self.law.n

    @property
    def x(self):
        return tuple(p[:-1] for p in self.law.points)

    @property
    def y(self):
        return tuple(p[-1] for p in self.law.points)

    @property
    def weights(self):
        return self.law.weights


def data_set(x, y, weights=None, field="data"):
    """Validated :class:`DataSet` from points ``x`` (n, d_x) and targets ``y`` (n,)."""
    if len(x) != len(y):
        raise InstanceError(
            f"{field}: x has {len(x)} points but y has {len(y)} targets; "
            "give one target per point"
        )
    if len(x) == 0:
        raise InstanceError(f"{field}.x is empty; give at least one data point")
    rows = []
    for k, (xk, yk) in enumerate(zip(x, y)):
        xk = list(xk) if hasattr(xk, "__len__") and not isinstance(xk, str) else [xk]
        rows.append(xk + [yk])
    return DataSet(atomic_law(rows, weights, field))


@dataclass(frozen=True)
class Instance:
    """One model: maps, laws, data, loss, schedule, horizon.

    Build with :func:`make_instance`, which validates everything; the
    dataclass itself trusts its fields.
    """

    name: str
    L: int
    sigma0: EdgeMap
    sigma: tuple  # inner maps for l = 1 .. L-1 (index 0 is layer 1)
    sigmaL: EdgeMap
    data: DataSet
    nu0: object
    m: tuple  # laws of W_l(0), l = 1 .. L-1
    nuL: object
    loss: Loss = field(default_factory=Loss)
    schedule: Schedule = field(default_factory=Schedule)
    T: Fraction = Fraction(1)
    order: int = 3
    description: str = ""

    @property
    def d_x(self):
        return self.data.d_x

    @property
    def is_polynomial(self):
        maps = [self.sigma0, self.sigmaL, *self.sigma]
        return (all(mp.is_polynomial for mp in maps) and self.loss.kind == "squared")

    @property
    def is_atomic(self):
        """Whether every initial law is a finite set of atoms (no quadrature);
        independent of :attr:`is_polynomial`, which is about the maps."""
        return all(law.kind == "atoms" for law in (self.nu0, *self.m, self.nuL))

    @property
    def covered(self):
        """Whether the convergence theorem covers this instance (see maps doc)."""
        pairs = [(self.sigma0, self.nu0), (self.sigmaL, self.nuL)]
        pairs += [(s, None) for s in self.sigma]
        for edge_map, law in pairs:
            if edge_map.covered == "no":
                return False
            if edge_map.covered == "bounded_features" and not law.bounded_support:
                return False
        return True

    def atomic(self, order=None):
        """The same instance with every law replaced by an atomic law.

        Continuous laws become quadrature rules with ``order`` nodes per
        coordinate (default ``self.order``).
        """
        order = self.order if order is None else order
        return replace(
            self,
            nu0=Atoms(self.nu0.atomic(order)),
            m=tuple(Atoms(law.atomic(order)) for law in self.m),
            nuL=Atoms(self.nuL.atomic(order)),
        )

    def sampled(self, n, seed=0):
        """The same instance with every law replaced by ``n`` Monte Carlo atoms.

        Law k of (nu0, m_1, ..., nuL) uses the seed ``seed + k``.
        """
        from mfdeep.model.laws import monte_carlo

        laws = [self.nu0, *self.m, self.nuL]
        atomic = [Atoms(monte_carlo(law, n, seed + k)) for k, law in enumerate(laws)]
        return replace(self, nu0=atomic[0], m=tuple(atomic[1:-1]), nuL=atomic[-1])

    def atomic_laws(self):
        """``(nu0, [m_1 .. m_{L-1}], nuL)`` as :class:`AtomicLaw`; needs atomic laws."""
        laws = (self.nu0, *self.m, self.nuL)
        bad = [k for k, law in enumerate(laws) if not isinstance(law, Atoms)]
        if bad:
            raise InstanceError(
                f"instance {self.name!r} has non-atomic laws at positions {bad}; "
                "call instance.atomic(order) first"
            )
        return laws[0].law, [law.law for law in laws[1:-1]], laws[-1].law


def make_instance(
    name, L, sigma0, sigma, sigmaL, data, nu0, m, nuL,
    loss=None, schedule=None, T=1, order=3, description="",
):
    """Validate and build an :class:`Instance`.

    ``sigma`` and ``m`` may be a single map/law (used for every inner layer)
    or sequences of length L - 1.
    """
    if isinstance(L, bool) or not isinstance(L, int):
        raise InstanceError(f"L={L!r} has type {type(L).__name__}; give an integer >= 2")
    if L < 2:
        raise InstanceError(
            f"L={L} hidden layers; the model needs L >= 2 (L = 1 is the shallow "
            "mean-field limit, outside this library)"
        )
    if not isinstance(data, DataSet):
        raise InstanceError(f"data has type {type(data).__name__}; build it with data_set")
    sigma = tuple(sigma) if isinstance(sigma, (list, tuple)) else (sigma,) * (L - 1)
    m = tuple(m) if isinstance(m, (list, tuple)) else (m,) * (L - 1)
    if len(sigma) != L - 1:
        raise InstanceError(f"sigma has {len(sigma)} inner maps; L={L} needs {L - 1}")
    if len(m) != L - 1:
        raise InstanceError(f"m has {len(m)} weight laws; L={L} needs {L - 1}")

    # Each map must be of the right kind, each law of the map's parameter dimension.
    for where, mp, kind in [("sigma0", sigma0, "input"), ("sigmaL", sigmaL, "output")] + [
        (f"sigma[{k + 1}]", s, "inner") for k, s in enumerate(sigma)
    ]:
        if not isinstance(mp, EdgeMap) or mp.kind != kind:
            got = mp.kind if isinstance(mp, EdgeMap) else type(mp).__name__
            raise InstanceError(f"{where} must be an {kind} map, got {got}")
    if len(sigma0.variables) != data.d_x:
        raise InstanceError(
            f"sigma0 {sigma0.name!r} takes inputs of dimension {len(sigma0.variables)} "
            f"but the data have d_x={data.d_x}; build the map for d_x={data.d_x}"
        )
    checks = [("nu0", nu0, sigma0.p), ("nuL", nuL, sigmaL.p)]
    checks += [(f"m[{k + 1}]", law, s.p) for k, (law, s) in enumerate(zip(m, sigma))]
    for where, law, p in checks:
        if not isinstance(law, (Gaussian, Uniform, Atoms)):
            raise InstanceError(
                f"{where} has type {type(law).__name__}; use gaussian, uniform or atoms"
            )
        if law.dim != p:
            raise InstanceError(
                f"{where} has dimension {law.dim} but its map needs parameters of "
                f"dimension {p}; give a law on R^{p}"
            )
    T = to_fraction(T, "T")
    if T <= 0:
        raise InstanceError(f"T={T} must be positive")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InstanceError(f"order={order!r} must be a positive integer")
    return Instance(
        name=name, L=L, sigma0=sigma0, sigma=sigma, sigmaL=sigmaL, data=data,
        nu0=nu0, m=m, nuL=nuL, loss=loss or Loss(), schedule=schedule or Schedule(),
        T=T, order=order, description=description,
    )


def with_depth(instance, L):
    """The same instance with ``L`` hidden layers.

    Inner layers beyond the current ones reuse the last inner map and law;
    fewer layers keep the first ``L - 1``.
    """
    sigma = list(instance.sigma[: L - 1])
    m = list(instance.m[: L - 1])
    while len(sigma) < L - 1:
        sigma.append(instance.sigma[-1])
        m.append(instance.m[-1])
    return make_instance(
        name=f"{instance.name}-L{L}", L=L, sigma0=instance.sigma0, sigma=sigma,
        sigmaL=instance.sigmaL, data=instance.data, nu0=instance.nu0, m=m,
        nuL=instance.nuL, loss=instance.loss, schedule=instance.schedule,
        T=instance.T, order=instance.order, description=instance.description,
    )

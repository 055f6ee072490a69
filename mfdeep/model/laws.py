"""Laws of the initial weights, the frozen features and the data.

Two layers of objects:

* :class:`AtomicLaw`: finitely many labelled atoms (exact rationals) with
  positive rational weights summing exactly to 1. Every expectation over it
  is a finite sum, so the reference backend computes it exactly.
* :class:`Gaussian`, :class:`Uniform`, :class:`Atoms`: the laws a finite
  network samples from. ``law.atomic(order)`` turns a continuous law into an
  atomic one by a tensor-product quadrature rule (Gauss-Hermite for a
  Gaussian, Gauss-Legendre for a uniform); the quadrature atoms are the
  float64 nodes read as exact dyadic rationals, and the weights are
  renormalised exactly, so the atomic law is an exact object.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from mfdeep.errors import InstanceError
from mfdeep.model.numbers import to_fraction, to_fraction_vector


@dataclass(frozen=True)
class AtomicLaw:
    """Atoms ``points[k]`` (each a tuple of ``dim`` Fractions) with ``weights[k]``.

    Atom ``k`` carries the label ``k``; conditioning in the path drift is on
    labels (MODEL.md section 2).
    """

    points: tuple
    weights: tuple
    origin: str = "atoms"

    @property
    def n(self):
        return len(self.points)

    @property
    def dim(self):
        return len(self.points[0])

    def as_arrays(self):
        """Float64 copies ``(points (n, dim), weights (n,))``."""
        pts = np.array([[float(v) for v in p] for p in self.points], dtype=np.float64)
        return pts, np.array([float(w) for w in self.weights], dtype=np.float64)

    def atomic(self, order=None):
        return self


def atomic_law(points, weights=None, field="law", origin="atoms"):
    """Validate and build an :class:`AtomicLaw`.

    Parameters
    ----------
    points : sequence of sequences of numbers, shape (n, dim)
    weights : sequence of numbers, optional
        Positive; default uniform. Exact inputs must sum exactly to 1; float
        inputs must sum to 1 within 1e-12 and are then renormalised exactly.
    field : str
        Name used in error messages.
    """
    if len(points) == 0:
        raise InstanceError(f"{field}.points is empty; give at least one atom")
    rows = [to_fraction_vector(p, f"{field}.points[{k}]") for k, p in enumerate(points)]
    dim = len(rows[0])
    for k, r in enumerate(rows):
        if len(r) != dim:
            raise InstanceError(
                f"{field}.points[{k}] has dimension {len(r)} but points[0] has "
                f"{dim}; every atom must have the same dimension"
            )
    if weights is None:
        ws = [Fraction(1, len(rows))] * len(rows)
    else:
        if len(weights) != len(rows):
            raise InstanceError(
                f"{field}.weights has {len(weights)} entries for {len(rows)} atoms; "
                "give one weight per atom"
            )
        ws = [to_fraction(w, f"{field}.weights[{k}]") for k, w in enumerate(weights)]
        for k, w in enumerate(ws):
            if w <= 0:
                raise InstanceError(
                    f"{field}.weights[{k}]={float(w)} is not positive; atoms must "
                    "have positive weight (drop atoms of weight zero)"
                )
        total = sum(ws)
        exact = not any(isinstance(w, float) for w in weights)
        if total != 1:
            if exact:
                raise InstanceError(
                    f"{field}.weights sum to {total} (exactly), not 1; "
                    "normalise them"
                )
            if abs(float(total) - 1) > 1e-12:
                raise InstanceError(
                    f"{field}.weights sum to {float(total)!r}, not 1; normalise them"
                )
            ws = [w / total for w in ws]
    return AtomicLaw(tuple(rows), tuple(ws), origin)


def _check_dim_vectors(field, **vectors):
    lengths = {k: len(v) for k, v in vectors.items()}
    if len(set(lengths.values())) != 1:
        raise InstanceError(
            f"{field}: {lengths} differ; give one entry per coordinate in each"
        )


@dataclass(frozen=True)
class Gaussian:
    """Independent Gaussian coordinates with means ``mean`` and deviations ``std``."""

    mean: tuple
    std: tuple

    kind = "gaussian"
    bounded_support = False

    @property
    def dim(self):
        return len(self.mean)

    def atomic(self, order):
        """Tensor-product Gauss-Hermite rule with ``order`` nodes per coordinate."""
        x, w = np.polynomial.hermite_e.hermegauss(order)
        nodes = [[m + s * xi for xi in x] for m, s in
                 zip(map(float, self.mean), map(float, self.std))]
        return _product_rule(nodes, w / w.sum(), f"gauss-hermite({order})")


@dataclass(frozen=True)
class Uniform:
    """Independent uniform coordinates on ``[low, high]``."""

    low: tuple
    high: tuple

    kind = "uniform"
    bounded_support = True

    @property
    def dim(self):
        return len(self.low)

    def atomic(self, order):
        """Tensor-product Gauss-Legendre rule with ``order`` nodes per coordinate."""
        x, w = np.polynomial.legendre.leggauss(order)
        nodes = [[(float(a) + float(b)) / 2 + (float(b) - float(a)) / 2 * xi for xi in x]
                 for a, b in zip(self.low, self.high)]
        return _product_rule(nodes, w / w.sum(), f"gauss-legendre({order})")


@dataclass(frozen=True)
class Atoms:
    """A discrete law given by explicit atoms; finite networks sample atoms."""

    law: AtomicLaw

    kind = "atoms"
    bounded_support = True

    @property
    def dim(self):
        return self.law.dim

    def atomic(self, order=None):
        return self.law


def _product_rule(nodes, w1d, origin):
    points, weights = [], []
    for combo in itertools.product(range(len(w1d)), repeat=len(nodes)):
        points.append(tuple(Fraction(nodes[d][i]) for d, i in enumerate(combo)))
        weights.append(Fraction(float(np.prod([w1d[i] for i in combo]))))
    total = sum(weights)
    return AtomicLaw(tuple(points), tuple(w / total for w in weights), origin)


def gaussian(mean, std, field="law"):
    """Validated :class:`Gaussian`; scalars broadcast to one coordinate."""
    mean = to_fraction_vector(mean, f"{field}.mean")
    std = to_fraction_vector(std, f"{field}.std")
    _check_dim_vectors(field, mean=mean, std=std)
    for k, s in enumerate(std):
        if s <= 0:
            raise InstanceError(f"{field}.std[{k}]={float(s)} must be positive")
    return Gaussian(mean, std)


def uniform(low, high, field="law"):
    """Validated :class:`Uniform`."""
    low = to_fraction_vector(low, f"{field}.low")
    high = to_fraction_vector(high, f"{field}.high")
    _check_dim_vectors(field, low=low, high=high)
    for k, (a, b) in enumerate(zip(low, high)):
        if not a < b:
            raise InstanceError(
                f"{field}: low[{k}]={float(a)} is not below high[{k}]={float(b)}"
            )
    return Uniform(low, high)


def atoms(points, weights=None, field="law"):
    """Validated :class:`Atoms`."""
    return Atoms(atomic_law(points, weights, field))


def monte_carlo(law, n, seed):
    """An atomic law of ``n`` equally weighted samples of ``law`` (numpy, ``seed``).

    Samples are float64 values read exactly as dyadic rationals, so the
    result is an exact :class:`AtomicLaw` like any other.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InstanceError(f"n={n!r} samples; give a positive integer")
    rng = np.random.default_rng(seed)
    if law.kind == "gaussian":
        draws = rng.normal(np.array(law.mean, float), np.array(law.std, float),
                           size=(n, law.dim))
    elif law.kind == "uniform":
        draws = rng.uniform(np.array(law.low, float), np.array(law.high, float),
                            size=(n, law.dim))
    else:
        pts, w = law.law.as_arrays()
        draws = pts[rng.choice(len(w), size=n, p=w / w.sum())]
    points = tuple(tuple(Fraction(float(v)) for v in row) for row in draws)
    return AtomicLaw(points, (Fraction(1, n),) * n, f"monte-carlo({n}, seed={seed})")

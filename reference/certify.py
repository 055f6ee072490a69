"""Validated enclosures of atomic MV solutions in Arb ball arithmetic.

Interval Taylor method with an a-priori enclosure (MODEL.md section 5,
proofs_notes/04_mv_picard.md §4.9). For the layered system y' = F(t, y) and
a step [t_k, t_k + h] with enclosure X_k of y(t_k):

1. a-priori box: find B with X_k + [0, h] F([t_k, t_k + h], B) inside the
   interior of B. By Picard-Lindelof (F is C^1) the solution from any point
   of X_k exists on the step, is unique, and stays in B.
2. tight enclosure at t_k + h: the Taylor polynomial of degree n - 1 around
   t_k with coefficients enclosed over X_k, plus the Lagrange remainder
   c_n(xi, y(xi)) h^n with (xi, y(xi)) in [t_k, t_k + h] x B.

Every operation is an Arb ball operation, so the enclosures are rigorous up
to the correctness of Arb and of this code; the series coefficients come
from :func:`mfdeep.reference.mv.taylor_picard`, which is exact arithmetic
on balls (no truncation beyond the explicit remainder term).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import flint

from mfdeep.reference.contexts import ArbOps
from mfdeep.reference.mv import LayeredSystem, taylor_picard


class CertificationError(RuntimeError):
    """No a-priori box could be validated even with the smallest step."""


def _interval(a, b):
    """The Arb ball [a, b]."""
    return flint.arb((a + b) / 2, (b - a) / 2)


def _hull(x, y):
    """A ball containing both balls."""
    lo = min(x.mid() - x.rad(), y.mid() - y.rad())
    hi = max(x.mid() + x.rad(), y.mid() + y.rad())
    return flint.arb((lo + hi) / 2, (hi - lo) / 2)


def _inside(inner, outer):
    """``inner`` lies in the interior of ``outer`` (Arb's strict containment)."""
    return outer.contains_interior(inner)


@dataclass
class Certificate:
    """A validated enclosure of the atomic layered MV solution on [0, T].

    ``times`` step end points; ``enclosures`` list over times of lists of
    balls (the flat layered state, ordered as ``LayeredSystem.layout``);
    ``boxes_max_radius`` largest a-priori box radius per step; ``stats``.
    """

    instance: str
    T: float
    times: list
    enclosures: list
    layout: list
    boxes_max_radius: list
    stats: dict = field(default_factory=dict)

    def final(self):
        return self.enclosures[-1]

    def max_radius(self):
        return max(float(b.rad()) for b in self.enclosures[-1])

    def as_dict(self):
        return {
            "instance": self.instance, "T": self.T,
            "certified": True,
            "statement": "for every atom, the MV solution exists and is unique on "
                         "[0, T] and lies in the enclosures",
            "times": [float(t) for t in self.times],
            "final_enclosure": [{"layer": l, "key": list(k), "coordinate": c,
                                 "mid": float(b.mid()), "rad": float(b.rad())}
                                for (l, k, c), b in zip(self.layout, self.final())],
            "max_final_radius": self.max_radius(),
            "boxes_max_radius": self.boxes_max_radius,
            "stats": self.stats,
        }


def certify(instance, T=None, h=None, degree=8, prec=128, max_halvings=12,
            progress=None):
    """Validated enclosure of the layered MV solution of an atomic ``instance``.

    Parameters
    ----------
    instance : Instance with atomic laws
    T : horizon (default ``instance.T``)
    h : initial step (default T / 16); halved where a box cannot be validated
    degree : Taylor degree n of the enclosure steps
    prec : Arb working precision in bits
    progress : optional callable ``progress(t)`` after each accepted step

    Raises
    ------
    CertificationError
        When a step cannot be validated after ``max_halvings`` halvings.
    """
    if degree < 2:
        raise ValueError(f"degree={degree!r}; the enclosure steps need degree >= 2")
    ops = ArbOps(prec)
    T = instance.T if T is None else T
    start = time.perf_counter()
    with ops.working():
        system = LayeredSystem(instance, ops)
        T_b = ops.convert(T)
        h_f = float(T) / 16 if h is None else float(h)
        t = ops.convert(0)
        X = system.initial()
        times, encl, boxes = [t], [X], []
        cache_tight, cache_box = {}, {}
        steps = rejected = 0
        while float(T_b - t) > 0:
            step = min(h_f, float(T_b - t))
            for _ in range(max_halvings + 1):
                h_b = T_b - t if step >= float(T_b - t) else ops.convert(step)
                B = _validate_box(system, X, t, h_b)
                if B is not None:
                    break
                step /= 2
                rejected += 1
            else:
                raise CertificationError(
                    f"no a-priori box validated at t={float(t):.4g} with step "
                    f"{step:.3g}; raise prec or lower the initial step")

            # Tight enclosure: Taylor polynomial over X plus remainder over B.
            _, Y = taylor_picard(LayeredSystem, instance, degree - 1, ops, t0=t, y0=X,
                                 cache=cache_tight)
            t_range = t + _interval(flint.arb(0), h_b)
            _, Rm = taylor_picard(LayeredSystem, instance, degree, ops, t0=t_range,
                                  y0=B, cache=cache_box)
            hn = h_b ** degree
            X = [y(h_b) + r.c[degree] * hn for y, r in zip(Y, Rm)]
            # The enclosure must also lie in the a-priori box.
            X = [x if _inside(x, b) else _intersect(x, b) for x, b in zip(X, B)]
            t = t + h_b
            if float(T_b - t) <= 0:  # the last step was h = T - t exactly
                t = T_b
            steps += 1
            times.append(t)
            encl.append(X)
            boxes.append(max(float(b.rad()) for b in B))
            if progress is not None:
                progress(float(t))
            h_f = min(2 * step, float(T) / 4)
    return Certificate(instance.name, float(T), times, encl, system.layout, boxes,
                       {"steps": steps, "rejected": rejected, "degree": degree,
                        "prec": prec, "seconds": time.perf_counter() - start})


def _intersect(x, b):
    lo = max(x.mid() - x.rad(), b.mid() - b.rad())
    hi = min(x.mid() + x.rad(), b.mid() + b.rad())
    if lo > hi:  # both must contain the solution: disjoint means a bug
        raise CertificationError(f"disjoint enclosures {x} and {b}")
    return flint.arb((lo + hi) / 2, (hi - lo) / 2)


def _validate_box(system, X, t, h, tries=6):
    """An a-priori box for [t, t + h], or None."""
    zero_h = _interval(flint.arb(0), h)
    t_range = t + zero_h
    F = system.drift(X, t_range)
    B = [x + zero_h * f for x, f in zip(X, F)]
    for _ in range(tries):
        # Inflate: twice the radius plus a margin relative to the midpoint.
        B = [flint.arb(b.mid(), 2 * b.rad() + 1e-12 * (1 + abs(b.mid()))) for b in B]
        F = system.drift(B, t_range)
        new = [x + zero_h * f for x, f in zip(X, F)]
        if all(_inside(n, b) for n, b in zip(new, B)):
            return B
        B = [_hull(n, b) for n, b in zip(new, B)]
    return None

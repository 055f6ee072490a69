"""Certified upper bounds on the constants of the contraction argument.

Named constants of proofs_notes/01_network.md §1.6 (sups of the edge maps,
their first derivatives and Lipschitz bounds from second derivatives) are
enclosed by Arb interval evaluation of the compiled programs over a box of
(h, w) values, split into sub-boxes; the upper ends of the enclosures are
upper bounds. The contraction constant K is then the recursion of
proofs_notes/04_mv_picard.md §4.6, evaluated on those upper bounds (every
quantity there is monotone in the bounds).

Norms: Euclidean on R^p, as in the notes. Mixed second derivatives bound the
Lipschitz constants: M^h <= max(sup|d_hh|, sup|grad_w d_h|) and
M^w <= max(sup|d_h grad_w|, sup ||hess_w||_F).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import flint
import sympy

from mfdeep.model.program import compile_exprs
from mfdeep.reference.contexts import ArbOps


def _upper(x):
    """Upper end of |x| for an Arb ball (or an exact constant), rounded up."""
    if not isinstance(x, flint.arb):
        return abs(float(x)) * (1 + 1e-15)
    return float(abs(x).upper()) * (1 + 1e-15)


def _programs(edge_map):
    """(value, d_h, grad_w, d_hh, grad_w d_h, hess_w) as one compiled program."""
    h = edge_map.variables[0]
    w = edge_map.params
    e = edge_map.expr
    parts = [e, sympy.diff(e, h)]
    parts += [sympy.diff(e, wk) for wk in w]
    parts += [sympy.diff(e, h, h)]
    parts += [sympy.diff(e, h, wk) for wk in w]
    parts += [sympy.diff(e, wj, wk) for wj in w for wk in w]
    return compile_exprs(parts, (h, *w))


def map_bounds(edge_map, h_box, w_boxes, splits=8, prec=64):
    """Certified bounds of one inner or output map over a box.

    ``h_box`` is (lo, hi); ``w_boxes`` a list of (lo, hi) per parameter
    coordinate (for an output map, the features' range). Each interval is
    split into ``splits`` pieces; the sups are maxima of Arb enclosures over
    the product of pieces.
    """
    ops = ArbOps(prec)
    p = len(edge_map.params)
    with ops.working():
        f = _programs(edge_map).bind(ops)
        pieces = [_split(h_box, splits)] + [_split(b, splits) for b in w_boxes]
        S = Ah = Aw = Mh = Mw = 0.0
        for combo in itertools.product(*pieces):
            out = f(*combo)
            value, dh = out[0], out[1]
            dw = out[2:2 + p]
            dhh = out[2 + p]
            dhw = out[3 + p:3 + 2 * p]
            hw = out[3 + 2 * p:]
            S = max(S, _upper(value))
            Ah = max(Ah, _upper(dh))
            Aw = max(Aw, math.sqrt(sum(_upper(d) ** 2 for d in dw)))
            mixed = math.sqrt(sum(_upper(d) ** 2 for d in dhw))
            Mh = max(Mh, _upper(dhh), mixed)
            Mw = max(Mw, mixed, math.sqrt(sum(_upper(d) ** 2 for d in hw)))
    return {"S": S, "Ah": Ah, "Aw": Aw, "Mh": Mh, "Mw": Mw}


def _split(box, n):
    lo, hi = float(box[0]), float(box[1])
    step = (hi - lo) / n
    return [flint.arb(lo + (k + 0.5) * step, step / 2 * (1 + 1e-12)) for k in range(n)]


@dataclass
class ContractionConstant:
    """K and the per-layer pieces of its recursion, with the constants used."""

    K: float
    K_layers: list
    constants: dict


def contraction_constant(instance, h_boxes, w_boxes, theta_box, splits=8):
    """K of proofs_notes 04 §4.6 from certified map bounds on the given boxes.

    ``h_boxes[l-1]`` is the range of states entering edge layer l (l = 1 .. L,
    the last being the output map); ``w_boxes[l-1]`` the ranges of layer l's
    weight coordinates; ``theta_box`` the range of the output feature.
    """
    L = instance.L
    inner = [map_bounds(instance.sigma[l], h_boxes[l], w_boxes[l], splits)
             for l in range(L - 1)]
    out = map_bounds(instance.sigmaL, h_boxes[L - 1], [theta_box], splits)
    Ah = {l + 1: b["Ah"] for l, b in enumerate(inner)}
    Aw = {l + 1: b["Aw"] for l, b in enumerate(inner)}
    Mh = {l + 1: b["Mh"] for l, b in enumerate(inner)}
    Mw = {l + 1: b["Mw"] for l, b in enumerate(inner)}
    Ah[L], Mh[L] = out["Ah"], out["Mh"]
    # The output map's h-derivative is Lipschitz in h only (theta is frozen).

    # Schedule, data and loss constants.
    sched = instance.schedule
    A = float(sched.alpha0)  # both schedules are maximal at t = 0
    Y = max(abs(float(y)) for y in instance.data.y)
    if instance.loss.kind == "squared":
        Lam0, Lam1 = Y + out["S"], 1.0
    else:
        Lam0, Lam1 = float(instance.loss.delta), 1.0

    # The recursion of 04 §4.6.
    a = {1: 0.0}
    for l in range(1, L):
        a[l + 1] = Ah[l] * a[l] + Aw[l]
    B = {L: Ah[L]}
    for l in range(L - 1, 1, -1):
        B[l] = Ah[l] * B[l + 1]
    c = {L: Mh[L] * a[L]}
    for l in range(L - 1, 1, -1):
        c[l] = Mh[l] * B[l + 1] * (1 + a[l]) + Ah[l] * c[l + 1]
    K_layers = [A * (Lam0 * Mw[l] * B[l + 1] * (1 + a[l])
                     + Lam1 * Ah[L] * a[L] * Aw[l] * B[l + 1]
                     + Lam0 * Aw[l] * c[l + 1]) for l in range(1, L)]
    constants = {"A": A, "Y": Y, "Lam0": Lam0, "Lam1": Lam1, "S_L": out["S"],
                 "Ah": Ah, "Aw": Aw, "Mh": Mh, "Mw": Mw}
    return ContractionConstant(max(K_layers), K_layers, constants)

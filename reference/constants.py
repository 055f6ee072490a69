"""Certified upper bounds on the constants of the contraction argument.

Named constants of proofs_notes/01_network.md §1.6 (sups of the edge maps,
their first derivatives and Lipschitz bounds from second derivatives) are
enclosed by Arb interval evaluation of the compiled programs over a box of
(h, w) values, split into sub-boxes; the upper ends of the enclosures are
upper bounds. The contraction constant K is then the recursion of
proofs_notes/04_mv_picard.md §4.6, evaluated on those upper bounds (every
quantity there is monotone in the bounds).

Rounding. No step from the enclosures to K rounds down or to nearest:

* each sub-box is an Arb ball that contains its closed piece of the box
  (the piece edges are exact rationals, rounded outwards), so the pieces
  cover the closed box; neighbours overlap by about 2^-29 of a piece's
  width, because an Arb radius carries 30 bits;
* each per-map bound is an exact Arb point, the upper end of an Arb
  enclosure (norms of gradients included), rounded up;
* those bounds and alpha0, |y|, delta are rounded up to floats
  (:func:`_float_up`, checked exactly), and the recursion of §4.6 runs in
  Arb at ``RECURSION_PREC`` bits on these floats, taken exactly; the
  reported constants are therefore exactly the recursion's inputs;
* K and the K_l leave as the smallest floats >= the upper ends of their
  balls.

So every float returned here is >= the quantity it bounds.

Norms: Euclidean on R^p, as in the notes. Mixed second derivatives bound the
Lipschitz constants: M^h <= max(sup|d_hh|, sup|grad_w d_h|) and
M^w <= max(sup|d_h grad_w|, sup ||hess_w||_F) (Frobenius >= operator norm).

Letters (notes 01 §1.6, 04 §4.6): ``S`` sup|sigma|, ``Ah``/``Aw`` sups of
d_h sigma / grad_w sigma, ``Mh``/``Mw`` their Lipschitz bounds, ``A`` sup of
alpha, ``Y`` sup|y|, ``Lam0``/``Lam1`` the loss-derivative bounds, ``a``,
``B``, ``c`` the recursions, ``K_layers`` the K_l and ``K`` their maximum.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

import flint
import sympy

from mfdeep.model.program import compile_exprs
from mfdeep.reference.contexts import ArbOps

#: Bits for the interval evaluation of the maps (default of map_bounds).
MAP_PREC = 64
#: Bits for the recursion of 04 §4.6. Its inputs are floats (exact points); at
#: 128 bits the ball of K exceeds the exact value by ~1e-37 relative, far below
#: the one-ulp rounding of the result.
RECURSION_PREC = 128


# --- Exact values and outward conversion ------------------------------------


def _fraction(x):
    """The exact rational value of an exact, finite Arb point."""
    man, exp = x.man_exp()
    man, exp = int(man), int(exp)
    return Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2 ** (-exp))


def _float_up(x):
    """A float >= every point of the Arb ball ``x`` (``inf`` if unbounded).

    The upper end ``x.upper()`` is an exact point; its nearest float is
    moved up while it lies below (compared as exact rationals), so the
    result is the smallest float >= that point.
    """
    if not isinstance(x, flint.arb):
        x = _exact(x, "value")
    u = x.upper()
    if not u.is_finite():
        return math.inf
    exact = _fraction(u)
    f = float(u)
    while math.isfinite(f) and Fraction(f) < exact:
        f = math.nextafter(f, math.inf)
    return f


def _exact(value, name):
    """``value`` (int, Fraction, float or numeric string) as an Arb ball.

    The ball is exact when the value is a dyadic rational representable at
    the working precision, and a correctly rounded enclosure otherwise.
    """
    if isinstance(value, flint.arb):
        return value
    try:
        q = value if isinstance(value, Fraction) else Fraction(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"{name}={value!r} ({type(value).__name__}) is not a finite real "
            "number; pass an int, a Fraction or a finite float"
        ) from None
    return flint.arb(flint.fmpq(q.numerator, q.denominator))


def _abs_up(x):
    """An exact Arb point >= |x| for a ball or an exact constant."""
    if not isinstance(x, flint.arb):
        x = _exact(x, "program output")
    return x.abs_upper()


def _sq_up(ups):
    """An exact Arb point >= the sum of squares of the exact points ``ups``."""
    total = flint.arb(0)
    for u in ups:
        total += u * u
    return total.upper()


def _max(points):
    """Maximum of exact Arb points (their comparisons are exact)."""
    best = flint.arb(0)
    for x in points:
        best = max(best, x)
    return best


# --- Boxes and their pieces ------------------------------------------------


def _interval(box, name):
    """``box`` = (lo, hi) as exact Fractions, checked: finite, lo <= hi."""
    try:
        lo, hi = box
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={box!r} is not a pair (lo, hi); pass two finite reals"
        ) from None
    lo = _to_fraction(lo, f"{name}[0]")
    hi = _to_fraction(hi, f"{name}[1]")
    if lo > hi:
        raise ValueError(
            f"{name}=({float(lo)!r}, {float(hi)!r}) has lo > hi; pass (lo, hi) "
            "with lo <= hi"
        )
    return lo, hi


def _to_fraction(value, name):
    if isinstance(value, (list, tuple)) or not isinstance(value, (numbers.Real, str)):
        raise TypeError(
            f"{name}={value!r} ({type(value).__name__}) is not a real number; "
            "pass an int, a Fraction or a finite float"
        )
    try:
        return Fraction(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"{name}={value!r} is not a finite real number; pass a finite bound"
        ) from None


def _split(box, n, name="box"):
    """Arb balls whose union contains the closed interval ``box``.

    Parameters
    ----------
    box : pair of real numbers
        (lo, hi) with lo <= hi: ints, Fractions or floats, taken exactly.
    n : int
        Number of pieces (one piece when lo == hi).
    name : str
        Name of the box in error messages.

    Returns
    -------
    list of flint.arb
        Piece k contains the exact closed interval [e_k, e_{k+1}],
        e_k = lo + (hi - lo) k / n: each edge is rounded to an Arb ball
        containing it, and the piece is the union of its two edge balls
        (outward rounded). Neighbours share an edge ball, so there is no
        gap, and e_0 = lo, e_n = hi are contained. Holds at the working
        precision ``flint.ctx.prec``, whatever the widths or signs.
    """
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"splits={n!r} must be a positive integer")
    lo, hi = _interval(box, name)
    if lo == hi:
        return [_exact(lo, name)]
    edges = [_exact(lo + (hi - lo) * Fraction(k, n), name) for k in range(n + 1)]
    return [edges[k].union(edges[k + 1]) for k in range(n)]


# --- Bounds of one map -------------------------------------------------------


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


def _map_bounds_arb(edge_map, h_box, w_boxes, splits, prec, name="w_boxes"):
    """:func:`map_bounds` with the bounds as exact Arb points."""
    if edge_map.kind not in ("inner", "output"):
        raise ValueError(
            f"edge_map {edge_map.name!r} has kind={edge_map.kind!r}; map_bounds "
            "takes an inner map sigma_l(h, w) or the output map sigmaL(h, theta)"
        )
    p = edge_map.p
    if len(w_boxes) != p:
        raise ValueError(
            f"{name} has {len(w_boxes)} intervals but map {edge_map.name!r} has "
            f"p={p} parameter coordinates; pass one (lo, hi) per coordinate"
        )
    ops = ArbOps(prec)
    with ops.working():
        f = _programs(edge_map).bind(ops)
        pieces = [_split(h_box, splits, "h_box")]
        pieces += [_split(b, splits, f"{name}[{k}]") for k, b in enumerate(w_boxes)]
        # Running maxima over pieces: S, Ah, d_hh as upper ends of |.|, the
        # vector parts as upper ends of squared norms (one square root at
        # the end: sup sqrt = sqrt sup).
        best = [flint.arb(0)] * 6  # S, Ah, Aw^2, d_hh, mixed^2, hess_w^2
        for combo in itertools.product(*pieces):
            ups = [_abs_up(x) for x in f(*combo)]
            piece = (
                ups[0],
                ups[1],
                _sq_up(ups[2 : 2 + p]),
                ups[2 + p],
                _sq_up(ups[3 + p : 3 + 2 * p]),
                _sq_up(ups[3 + 2 * p :]),
            )
            best = [max(m, u) for u, m in zip(piece, best)]
        S, Ah, Aw2, Hh, Mix2, Hw2 = best
        Aw, mixed, Hw = (x.sqrt().upper() for x in (Aw2, Mix2, Hw2))
    return {
        "S": S,
        "Ah": Ah,
        "Aw": Aw,
        "Mh": _max((Hh, mixed)),
        "Mw": _max((mixed, Hw)),
    }


def map_bounds(edge_map, h_box, w_boxes, splits=8, prec=MAP_PREC):
    """Certified bounds of one inner or output map over a box.

    Parameters
    ----------
    edge_map : EdgeMap
        An inner map sigma_l(h, w) or the output map sigmaL(h, theta), with
        any parameter dimension p (for the output map, p = p_L).
    h_box : pair of real numbers
        (lo, hi) of the state h.
    w_boxes : sequence of pairs
        One (lo, hi) per parameter coordinate, ``edge_map.p`` of them (for
        an output map, the ranges of the feature's p_L coordinates).
    splits : int
        Each interval is cut into ``splits`` closed pieces (:func:`_split`).
    prec : int
        Arb working precision in bits for the evaluation of the maps.

    Returns
    -------
    dict
        Floats ``S`` >= sup|sigma|, ``Ah`` >= sup|d_h sigma|,
        ``Aw`` >= sup|grad_w sigma| (Euclidean), ``Mh`` >= max(sup|d_hh sigma|,
        sup|grad_w d_h sigma|), ``Mw`` >= max(sup|grad_w d_h sigma|,
        sup||hess_w sigma||_F), sups over the closed box.

    Notes
    -----
    Accuracy contract: each float is >= the sup it names (Arb enclosures on
    pieces that cover the closed box, then :func:`_float_up`); it overstates
    the sup by the enclosures' overestimate on a piece, which shrinks with
    the piece width. Cost: ``splits ** (1 + p)`` evaluations.
    Source: proofs_notes/01_network.md §1.6.
    """
    bounds = _map_bounds_arb(edge_map, h_box, w_boxes, splits, prec)
    return {k: _float_up(v) for k, v in bounds.items()}


# --- K ------------------------------------------------------------------------


@dataclass
class ContractionConstant:
    """K and the per-layer pieces of its recursion, with the constants used.

    Every float is a rigorous upper bound of the quantity it names (module
    doc, "Rounding").
    """

    K: float
    K_layers: list
    constants: dict


def _theta_boxes(theta_box, p_L):
    """``theta_box`` as p_L intervals: one pair for all, or one per coordinate."""
    if len(theta_box) == 2 and all(
        isinstance(v, (numbers.Real, str)) for v in theta_box
    ):
        return [theta_box] * p_L
    boxes = list(theta_box)
    if len(boxes) != p_L:
        raise ValueError(
            f"theta_box has {len(boxes)} intervals but the output map has "
            f"p_L={p_L} feature coordinates; pass one (lo, hi) for all of them "
            "or a list of p_L pairs"
        )
    return boxes


def _recursion(L, Ah, Aw, Mh, Mw, A, Lam0, Lam1):
    """The recursion of 04 §4.6 on Arb balls; returns (K_l for l = 1 .. L-1)."""
    a = {1: flint.arb(0)}
    for l in range(1, L):
        a[l + 1] = Ah[l] * a[l] + Aw[l]
    B = {L: Ah[L]}
    for l in range(L - 1, 1, -1):
        B[l] = Ah[l] * B[l + 1]
    c = {L: Mh[L] * a[L]}
    for l in range(L - 1, 1, -1):
        c[l] = Mh[l] * B[l + 1] * (1 + a[l]) + Ah[l] * c[l + 1]
    return [
        A
        * (
            Lam0 * Mw[l] * B[l + 1] * (1 + a[l])
            + Lam1 * Ah[L] * a[L] * Aw[l] * B[l + 1]
            + Lam0 * Aw[l] * c[l + 1]
        )
        for l in range(1, L)
    ]


def contraction_constant(instance, h_boxes, w_boxes, theta_box, splits=8):
    """K of proofs_notes 04 §4.6 from certified map bounds on the given boxes.

    Parameters
    ----------
    instance : Instance
        Any instance; its output map may have any feature dimension p_L.
    h_boxes : sequence of pairs
        ``h_boxes[l-1]`` is the range of states entering edge layer l
        (l = 1 .. L, the last being the output map).
    w_boxes : sequence of sequences of pairs
        ``w_boxes[l-1]`` the ranges of layer l's weight coordinates.
    theta_box : pair, or sequence of p_L pairs
        Range of the output feature: one (lo, hi) applied to each of its
        p_L coordinates, or one pair per coordinate.
    splits : int
        Pieces per interval in :func:`map_bounds`.

    Returns
    -------
    ContractionConstant
        ``K`` >= max_l K_l, ``K_layers[l-1]`` >= K_l, and ``constants`` (the
        inputs of the recursion, each rounded up to a float).

    Notes
    -----
    Accuracy contract: the map bounds (upper ends of Arb enclosures) and
    alpha0, |y|, delta are rounded up to floats, and the recursion runs on
    them in Arb (:func:`contraction_from_constants`); only its results are
    converted, upwards, to floats. So K is an upper bound of the K of §4.6
    with the sups taken over the boxes; how far above is set by the map
    enclosures (:func:`map_bounds`), not by the arithmetic here (K is within
    one float ulp of the exact recursion on the reported constants). The
    output map's M^h is bounded by its joint (h, theta) Lipschitz bound,
    which is >= the h-only one §1.6 asks for.
    Source: proofs_notes/04_mv_picard.md §4.6.
    """
    L = instance.L
    p_L = instance.sigmaL.p
    inner = [
        _map_bounds_arb(
            instance.sigma[l],
            h_boxes[l],
            w_boxes[l],
            splits,
            MAP_PREC,
            name=f"w_boxes[{l}]",
        )
        for l in range(L - 1)
    ]
    out = _map_bounds_arb(
        instance.sigmaL,
        h_boxes[L - 1],
        _theta_boxes(theta_box, p_L),
        splits,
        MAP_PREC,
        name="theta_box",
    )
    Ah = {l + 1: b["Ah"] for l, b in enumerate(inner)}
    Aw = {l + 1: b["Aw"] for l, b in enumerate(inner)}
    Mh = {l + 1: b["Mh"] for l, b in enumerate(inner)}
    Mw = {l + 1: b["Mw"] for l, b in enumerate(inner)}
    # The output map enters through Ah_L and Mh_L (theta is frozen); its Mh
    # is the joint (h, theta) bound, >= the h-only constant that is needed.
    Ah[L], Mh[L] = out["Ah"], out["Mh"]

    # Schedule, data and loss constants, exact or outward rounded.
    with ArbOps(RECURSION_PREC).working():
        sched = instance.schedule
        A = _exact(sched.alpha0, "schedule.alpha0").abs_upper()
        # (both schedules are maximal at t = 0)
        Y = _max(_exact(y, "data.y").abs_upper() for y in instance.data.y)
        if instance.loss.kind == "squared":
            Lam0 = (Y + out["S"]).upper()
        else:
            Lam0 = _exact(instance.loss.delta, "loss.delta").abs_upper()

    # The inputs, rounded up to floats, are what the recursion uses: K can
    # be recomputed from the reported constants alone.
    def up(d):
        return {k: _float_up(v) for k, v in d.items()}

    constants = {
        "A": _float_up(A),
        "Y": _float_up(Y),
        "Lam0": _float_up(Lam0),
        "Lam1": 1.0,
        "S_L": _float_up(out["S"]),
        "Ah": up(Ah),
        "Aw": up(Aw),
        "Mh": up(Mh),
        "Mw": up(Mw),
    }
    K, K_layers = contraction_from_constants(L, constants)
    constants["recursion_prec"] = RECURSION_PREC
    return ContractionConstant(K, K_layers, constants)


def contraction_from_constants(L, constants):
    """K and the K_l of 04 §4.6 from named constants, evaluated in Arb.

    Parameters
    ----------
    L : int
        Number of hidden layers (L >= 2).
    constants : dict
        ``A``, ``Lam0``, ``Lam1`` (numbers) and ``Ah``, ``Mh`` (dicts over
        l = 1 .. L), ``Aw``, ``Mw`` (dicts over l = 1 .. L-1), as in
        :attr:`ContractionConstant.constants` (keys may be ints or strings,
        so a JSON report can be passed back in). Numbers are taken exactly.

    Returns
    -------
    (float, list of float)
        K and [K_1, ..., K_{L-1}], each >= the exact value of the recursion
        on these inputs.

    Notes
    -----
    Accuracy contract: the recursion runs in Arb at ``RECURSION_PREC`` bits
    and each result is the smallest float >= the upper end of its ball, so
    it exceeds the exact value by at most about one float ulp.
    Source: proofs_notes/04_mv_picard.md §4.6.
    """
    if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 2:
        raise ValueError(f"L={L!r} must be an integer >= 2 (hidden layers)")
    with ArbOps(RECURSION_PREC).working():

        def num(key):
            return _exact(constants[key], key)

        def per_layer(key, layers):
            table = constants[key]
            out = {}
            for l in layers:
                v = table[l] if l in table else table[str(l)]
                out[l] = _exact(v, f"{key}[{l}]")
            return out

        Ah, Mh = per_layer("Ah", range(1, L + 1)), per_layer("Mh", range(1, L + 1))
        Aw, Mw = per_layer("Aw", range(1, L)), per_layer("Mw", range(1, L))
        balls = _recursion(L, Ah, Aw, Mh, Mw, num("A"), num("Lam0"), num("Lam1"))
        K_layers = [_float_up(k) for k in balls]
    return max(K_layers), K_layers

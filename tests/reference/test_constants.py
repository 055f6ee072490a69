"""Certified constants of the contraction argument (reference/constants.py, C4).

Four things are checked, each with a canary showing the check can fail:

* the K returned is the smallest float >= the recursion of proofs_notes 04
  §4.6 evaluated exactly (in Fractions) on the constants it reports, on the
  built-in instances and on random inputs; the float recursion it replaces
  is within its rounding-error budget but can fall below the exact value;
* the map bounds bound the maps: every value and derivative sampled in the
  box, computed independently at 30 digits, is <= its bound;
* the pieces of a box cover the closed box, endpoints included, for boxes
  whose widths are tiny, not representable, negative or zero;
* output maps with a feature of dimension p_L > 1.
"""

import itertools
import math
import random
from dataclasses import replace
from fractions import Fraction

import flint
import mpmath
import pytest
import sympy

from mfdeep.model import (
    Loss,
    Schedule,
    data_set,
    get_map,
    load_instance,
    make_instance,
    make_map,
)
from mfdeep.model.laws import atoms
from mfdeep.model.maps import h, theta_symbols
from mfdeep.reference import constants as C
from mfdeep.reference.contexts import MPOps

U = 2.0**-53  # unit roundoff of float64

BUILTINS = ["default", "exact", "l2", "mlp"]


# --- Helpers -----------------------------------------------------------------


def recursion(L, c, num):
    """04 §4.6 transcribed with the number type ``num`` (float or Fraction)."""
    Ah = {l: num(c["Ah"][l]) for l in range(1, L + 1)}
    Mh = {l: num(c["Mh"][l]) for l in range(1, L + 1)}
    Aw = {l: num(c["Aw"][l]) for l in range(1, L)}
    Mw = {l: num(c["Mw"][l]) for l in range(1, L)}
    A, Lam0, Lam1 = num(c["A"]), num(c["Lam0"]), num(c["Lam1"])
    a = {1: num(0)}
    for l in range(1, L):
        a[l + 1] = Ah[l] * a[l] + Aw[l]
    B = {L: Ah[L]}
    for l in range(L - 1, 1, -1):
        B[l] = Ah[l] * B[l + 1]
    g = {L: Mh[L] * a[L]}
    for l in range(L - 1, 1, -1):
        g[l] = Mh[l] * B[l + 1] * (1 + a[l]) + Ah[l] * g[l + 1]
    return [
        A
        * (
            Lam0 * Mw[l] * B[l + 1] * (1 + a[l])
            + Lam1 * Ah[L] * a[L] * Aw[l] * B[l + 1]
            + Lam0 * Aw[l] * g[l + 1]
        )
        for l in range(1, L)
    ]


def float_budget(L):
    """Relative error bound of the float recursion: gamma_n = n u / (1 - n u).

    Every term is a sum or product of non-negative numbers, so each of the at
    most n = 8 L + 12 operations on the way to one K_l adds at most u to the
    relative error (2 per layer for a, 1 for B, 5 for c, 12 for K_l).
    """
    n = 8 * L + 12
    return n * U / (1 - n * U)


def is_smallest_float_above(k, exact):
    """k >= exact, and the float just below k is < exact."""
    return Fraction(k) >= exact and Fraction(math.nextafter(k, -math.inf)) < exact


def ends(piece):
    """Exact endpoints of an Arb ball: mid -/+ rad, both exact dyadics."""
    m, r = C._fraction(piece.mid()), C._fraction(piece.rad())
    return m - r, m + r


def covered(pieces, x):
    """Whether x lies in the union of the balls ``pieces``."""
    return any(lo <= x <= hi for lo, hi in map(ends, pieces))


def all_covered(pieces, xs):
    """``covered`` for many points: sweep the points and the pieces in order."""
    spans = sorted(map(ends, pieces))
    reach, k = None, 0
    for x in sorted(xs):
        # reach: the furthest right end among the pieces starting at or before x.
        while k < len(spans) and spans[k][0] <= x:
            reach = spans[k][1] if reach is None else max(reach, spans[k][1])
            k += 1
        if reach is None or reach < x:
            return False
    return True


def pad(lo, hi):
    """The margin properties.checks._ranges puts around visited ranges."""
    margin = 0.05 * (hi - lo) + 0.05
    return (lo - margin, hi + margin)


def boxes(instance):
    """Boxes around the initial states of an atomic instance, without torch.

    h_1: the values of sigma0 on data x atoms; h_{l+1}: [-S_l, S_l] with S_l
    the certified sup of sigma_l on layer l's box (hbar_{l+1} is an average
    of such values); w, theta: the atoms' ranges. All padded like C4's.
    """
    nu0, ms, nuL = instance.atomic_laws()
    ops = MPOps(30)
    sigma0 = instance.sigma0.value.bind(ops)
    h1 = [
        float(sigma0(*map(ops.convert, x), *map(ops.convert, th)))
        for x in instance.data.x
        for th in nu0.points
    ]
    h_boxes = [pad(min(h1), max(h1))]
    w_boxes = []
    for l, law in enumerate(ms):
        cols = list(zip(*law.points))
        w_boxes.append([pad(float(min(c)), float(max(c))) for c in cols])
        S = C.map_bounds(instance.sigma[l], h_boxes[l], w_boxes[l], splits=4)["S"]
        h_boxes.append((-S, S))
    thetas = [float(t) for p in nuL.points for t in p]
    return h_boxes, w_boxes, pad(min(thetas), max(thetas))


def two_feature_map():
    t0, t1 = theta_symbols(2)
    return make_map(
        "output",
        "two_feature",
        t0 * sympy.tanh(h) + t1 * sympy.sin(h) / 2,
        (h,),
        (t0, t1),
        "bounded_features",
        "theta0 tanh h + theta1 sin(h)/2",
    )


def padded_feature_map():
    # p_L = 2, but theta1 does not enter: the map is theta_tanh in disguise.
    t0, t1 = theta_symbols(2)
    return make_map(
        "output",
        "theta_tanh_p2",
        t0 * sympy.tanh(h),
        (h,),
        (t0, t1),
        "bounded_features",
        "theta0 tanh h, theta1 unused",
    )


def with_output(instance, sigmaL, nuL):
    return make_instance(
        instance.name + "-pL",
        instance.L,
        instance.sigma0,
        list(instance.sigma),
        sigmaL,
        instance.data,
        instance.nu0,
        list(instance.m),
        nuL,
        loss=instance.loss,
        schedule=instance.schedule,
        T=instance.T,
    )


# --- (a) K: the Arb recursion against exact and float arithmetic --------------


@pytest.fixture(scope="module")
def builtin_K():
    out = {}
    for name in BUILTINS:
        instance = load_instance(name)
        atomic = instance.atomic() if instance.is_polynomial else instance.atomic(3)
        hb, wb, tb = boxes(atomic)
        out[name] = (atomic.L, C.contraction_constant(atomic, hb, wb, tb, splits=8))
    return out


@pytest.mark.parametrize("name", BUILTINS)
def test_K_is_the_smallest_float_above_the_exact_recursion(builtin_K, name):
    L, K = builtin_K[name]
    exact = recursion(L, K.constants, Fraction)
    for k, e in zip(K.K_layers, exact):
        assert is_smallest_float_above(k, e)
    assert K.K == max(K.K_layers)


@pytest.mark.parametrize("name", BUILTINS)
def test_K_is_within_the_rounding_budget_of_the_float_recursion(builtin_K, name):
    # The float recursion the module used before, on the same inputs. It
    # may land on either side of K (it rounds to nearest), but no further
    # than its error budget plus the one ulp K is rounded up by.
    L, K = builtin_K[name]
    floats = recursion(L, K.constants, float)
    for k, f in zip(K.K_layers, floats):
        assert abs(k - f) <= (float_budget(L) + 2 * U) * k


def test_K_recomputes_from_a_json_report_of_its_constants(builtin_K):
    # Keys come back as strings from JSON; the result must not change.
    L, K = builtin_K["default"]
    as_json = {
        k: ({str(l): v for l, v in d.items()} if isinstance(d, dict) else d)
        for k, d in K.constants.items()
    }
    assert C.contraction_from_constants(L, as_json) == (K.K, K.K_layers)


def test_loss_schedule_and_data_constants_are_rounded_up_not_to_nearest():
    # alpha0 = delta = 1/3 and y = -1/3 have no float; float(1/3) is below
    # 1/3 (canary), while the reported A, Y, Lam0 are the floats just above.
    third = Fraction(1, 3)
    assert Fraction(float(third)) < third
    atomic = load_instance("default").atomic(2)
    hb, wb, tb = boxes(atomic)
    odd = replace(
        atomic,
        data=data_set([["-1"], ["1"]], ["-1/3", "1/4"]),
        loss=Loss("pseudo_huber", third),
        schedule=Schedule("decay", third, Fraction(2)),
    )
    K = C.contraction_constant(odd, hb, wb, tb, splits=4)
    for key in ("A", "Y", "Lam0"):
        assert is_smallest_float_above(K.constants[key], third)
    exact = recursion(odd.L, K.constants, Fraction)
    assert all(is_smallest_float_above(k, e) for k, e in zip(K.K_layers, exact))


def random_constants(rng, L):
    def r():
        return rng.uniform(0.05, 3.0)

    return {
        "A": r(),
        "Lam0": r(),
        "Lam1": 1.0,
        "Ah": {l: r() for l in range(1, L + 1)},
        "Mh": {l: r() for l in range(1, L + 1)},
        "Aw": {l: r() for l in range(1, L)},
        "Mw": {l: r() for l in range(1, L)},
    }


def test_K_bounds_the_exact_recursion_on_random_inputs_where_floats_do_not():
    # 300 random input sets, L = 2 .. 6. The Arb result is always the
    # smallest float above the exact value. Canary: the plain float
    # recursion falls below the exact value on some of them (about a third
    # of the K_l in a trial run), so "K >= exact" is a check that can fail.
    rng = random.Random(20240611)
    float_below = 0
    for _ in range(300):
        L = rng.randint(2, 6)
        c = random_constants(rng, L)
        _, K_layers = C.contraction_from_constants(L, c)
        exact = recursion(L, c, Fraction)
        floats = recursion(L, c, float)
        assert all(is_smallest_float_above(k, e) for k, e in zip(K_layers, exact))
        float_below += sum(Fraction(f) < e for f, e in zip(floats, exact))
    assert float_below > 0


def test_float_up_is_the_smallest_float_above_and_plain_conversion_is_not():
    with flint.ctx.workprec(128):
        one_plus = flint.arb(1) + flint.arb(2) ** -60  # nearest float: 1.0
        cases = [
            one_plus,
            -one_plus,
            flint.arb(1) / 3,
            -flint.arb(1) / 3,
            flint.arb(0),
            flint.arb(2) ** -1074 / 3,
            flint.arb(7) / 2**60,
        ]
        for x in cases:
            assert is_smallest_float_above(C._float_up(x), C._fraction(x.upper()))
        assert C._float_up(flint.arb(10) ** 400) == math.inf
        # Canary: float() of the upper end rounds to nearest, here downwards.
        assert Fraction(float(one_plus.upper())) < C._fraction(one_plus.upper())


# --- (b) The map bounds bound the maps ------------------------------------------


def derivatives(edge_map):
    """Value, d_h, grad_w, d_hh, grad_w d_h, hess_w, straight from SymPy."""
    w, e = edge_map.params, edge_map.expr
    return (
        [e, sympy.diff(e, h)]
        + [sympy.diff(e, x) for x in w]
        + [sympy.diff(e, h, h)]
        + [sympy.diff(e, h, x) for x in w]
        + [sympy.diff(e, x, y) for x in w for y in w]
    )


def sample_points(box, n_grid, n_random, seed):
    """A grid with n_grid points per axis (corners included) and random points."""
    rng = random.Random(seed)
    axes = [
        [
            Fraction(lo) + (Fraction(hi) - Fraction(lo)) * Fraction(k, n_grid - 1)
            for k in range(n_grid)
        ]
        for lo, hi in box
    ]
    grid = list(itertools.product(*axes))
    rand = [
        tuple(
            Fraction(lo) + (Fraction(hi) - Fraction(lo)) * Fraction(rng.random())
            for lo, hi in box
        )
        for _ in range(n_random)
    ]
    return grid + rand


def sampled_quantities(edge_map, points):
    """The five bounded quantities at each point, at 30 digits (mpmath)."""
    p = edge_map.p
    fn = sympy.lambdify((h, *edge_map.params), derivatives(edge_map), modules="mpmath")
    out = []
    with mpmath.workdps(30):

        def norm(xs):
            return mpmath.sqrt(sum(x * x for x in xs))

        for pt in points:
            v = [
                abs(x)
                for x in fn(*(mpmath.mpf(q.numerator) / q.denominator for q in pt))
            ]
            mixed = norm(v[3 + p : 3 + 2 * p])
            out.append(
                {
                    "S": v[0],
                    "Ah": v[1],
                    "Aw": norm(v[2 : 2 + p]),
                    "Mh": max(v[2 + p], mixed),
                    "Mw": max(mixed, norm(v[3 + 2 * p :])),
                }
            )
    return out


def violations(bounds, samples):
    # No tolerance: the 30-digit samples err by ~1e-30 relative, while a
    # bound exceeds the sup it encloses by the overestimate of an enclosure
    # on a piece of positive width (~1e-9 relative at the least, from the
    # pieces' 30-bit radii), or equals it where both are exact (a constant
    # derivative gives 1 == 1).
    return [
        (k, float(s[k]), bounds[k]) for s in samples for k in bounds if s[k] > bounds[k]
    ]


MAP_CASES = {
    "bounded2": (
        lambda: get_map("inner", "bounded2"),
        (-1.3, 0.7),
        [(0.1, 1.9), (-0.8, 0.4)],
    ),
    "mlp": (lambda: get_map("inner", "mlp"), (-0.9, 1.1), [(-0.3, 1.7)]),
    "cubic": (lambda: get_map("inner", "cubic"), (-1.05, 0.95), [(-0.5, 1.25)]),
    "theta_tanh": (lambda: get_map("output", "theta_tanh"), (-0.4, 0.6), [(0.5, 1.5)]),
    "linear": (lambda: get_map("output", "linear"), (-1.1, 1.3), [(0.9, 2.1)]),
    "two_feature": (two_feature_map, (-0.7, 1.2), [(0.5, 1.5), (-1.0, 0.25)]),
}


@pytest.fixture(scope="module", params=sorted(MAP_CASES))
def map_case(request):
    make, h_box, w_boxes = MAP_CASES[request.param]
    edge_map = make()
    bounds = C.map_bounds(edge_map, h_box, w_boxes, splits=16)
    points = sample_points([h_box, *w_boxes], n_grid=9, n_random=200, seed=1)
    return edge_map, h_box, w_boxes, bounds, sampled_quantities(edge_map, points)


def test_sampled_values_and_derivatives_stay_below_the_map_bounds(map_case):
    _, _, _, bounds, samples = map_case
    assert violations(bounds, samples) == []


def test_bounds_cut_by_ten_percent_are_exceeded_by_some_sample(map_case):
    # Canary: the sampling reaches within 10 % of at least one bound of
    # every map (within 1 % of S or Ah on all of them in a trial run), so it
    # would notice a bound that is too small by that much.
    _, _, _, bounds, samples = map_case
    shrunk = {k: 0.9 * v for k, v in bounds.items()}
    assert violations(shrunk, samples) != []


def test_samples_outside_the_box_can_exceed_its_bounds():
    # Canary: the bounds are sups over the box only. For w tanh(h), a weight
    # beyond the box's end gives a larger value than S allows.
    edge_map = get_map("inner", "mlp")
    bounds = C.map_bounds(edge_map, (-0.9, 1.1), [(-0.3, 1.7)], splits=16)
    outside = sample_points([(-0.9, 1.1), (1.7, 2.0)], n_grid=5, n_random=0, seed=2)
    assert violations(bounds, sampled_quantities(edge_map, outside)) != []


def test_map_bounds_rejects_a_wrong_number_of_parameter_intervals():
    with pytest.raises(ValueError, match=r"w_boxes has 1 intervals.*p=2"):
        C.map_bounds(get_map("inner", "bounded2"), (-1, 1), [(0, 1)])
    with pytest.raises(ValueError, match="kind='input'"):
        C.map_bounds(get_map("input", "affine"), (-1, 1), [(0, 1), (0, 1)])


# --- (c) The pieces cover the closed box --------------------------------------


AWKWARD_BOXES = [
    (1e6, 1e6 + 1e-9),  # width of ~9 ulps of the endpoints
    (1.0, 1.0 + 2.0**-50),  # width of 4 ulps
    (0.1, 0.7),  # decimal ends, not representable
    (Fraction(1, 3), Fraction(2, 3)),  # exact, non-dyadic ends
    (-3.3, -0.1),  # negative range
    (-1e-300, 1e-300),  # tiny, around zero
    (-5e-324, 5e-324),  # subnormal ends
    (-1e300, 1e300),  # huge
    (2.5, 2.5),  # a point
    (Fraction(1, 3), Fraction(1, 3)),  # a point that is not a float
]


def naive_split(box, n):
    """Float centres and radii, no margin: what a careless split does."""
    lo, hi = float(box[0]), float(box[1])
    step = (hi - lo) / n
    return [flint.arb(lo + (k + 0.5) * step, step / 2) for k in range(n)]


def coverage_points(box, n):
    lo, hi = map(Fraction, box)
    even = [lo + (hi - lo) * Fraction(k, 997) for k in range(998)]
    edges = [lo + (hi - lo) * Fraction(k, n) for k in range(n + 1)]
    return [lo, hi] + even + edges


@pytest.mark.parametrize("box", AWKWARD_BOXES, ids=str)
@pytest.mark.parametrize("n", [1, 3, 8, 32])
@pytest.mark.parametrize("prec", [53, 64, 128])
def test_the_pieces_cover_the_closed_box(box, n, prec):
    with flint.ctx.workprec(prec):
        pieces = C._split(box, n)
    points = coverage_points(box, n)
    assert covered(pieces, points[0]) and covered(pieces, points[1])  # lo, hi
    assert all_covered(pieces, points)

    # The pieces are not much wider than needed: each side of a piece can
    # move outwards by the radius of its edge ball and by a few roundings at
    # ``prec`` bits, each at most 2^(1-prec) max|end| (measured in total: up
    # to 8.7 * 2^-prec max|end|; allowed: 16), and by the roundings up of a
    # 30-bit Arb radius (measured: up to 4e-9 of the share; allowed: 2^-26 =
    # 1.5e-8). This only catches gross widening, such as a piece that is the
    # whole box.
    lo, hi = map(Fraction, box)
    share = (hi - lo) / n if lo != hi else Fraction(0)
    slack = (
        16 * Fraction(2) ** -prec * max(abs(lo), abs(hi)) + Fraction(2) ** -26 * share
    )
    for piece in pieces:
        a, b = ends(piece)
        assert b - a <= share + slack


def test_a_float_centred_split_leaves_gaps_that_the_check_finds():
    # Canary: the coverage check catches the rounding gaps of a naive split.
    box = (1e6, 1e6 + 1e-9)
    pieces = naive_split(box, 8)
    points = coverage_points(box, 8)
    assert not all_covered(pieces, points)
    assert not all(covered(pieces, x) for x in points)


@pytest.mark.parametrize(
    "box, match",
    [
        ((1.0, 0.0), r"box=\(1.0, 0.0\) has lo > hi"),
        ((0.0, math.nan), r"box\[1\]=nan is not a finite real"),
        ((-math.inf, 0.0), r"box\[0\]=-inf is not a finite real"),
        ((0.0,), "is not a pair"),
        (("a", 1), r"box\[0\]='a' is not a finite real"),
    ],
)
def test_bad_boxes_raise_a_named_error(box, match):
    with pytest.raises(ValueError, match=match):
        C._split(box, 4)


def test_a_non_positive_number_of_pieces_is_rejected():
    with pytest.raises(ValueError, match="splits=0"):
        C._split((0, 1), 0)


# --- (d) Output maps with p_L > 1 ---------------------------------------------


@pytest.fixture(scope="module")
def default_boxes():
    atomic = load_instance("default").atomic(2)
    return atomic, boxes(atomic)


def test_an_unused_second_feature_leaves_K_unchanged(default_boxes):
    # sigmaL(h, theta0, theta1) = theta0 tanh h is theta_tanh with an extra
    # coordinate; the extra split changes no enclosure, so K is identical.
    atomic, (hb, wb, tb) = default_boxes
    base = C.contraction_constant(atomic, hb, wb, tb, splits=8)
    nuL = atoms([[Fraction(1, 2), -1], [Fraction(3, 2), 1]], ["1/2", "1/2"])
    padded = with_output(atomic, padded_feature_map(), nuL)
    two = C.contraction_constant(padded, hb, wb, [tb, (-1.0, 1.0)], splits=8)
    assert (two.K, two.K_layers) == (base.K, base.K_layers)


def test_a_two_feature_output_map_gives_K_from_its_own_bounds(default_boxes):
    atomic, (hb, wb, _) = default_boxes
    nuL = atoms(
        [[Fraction(1, 2), -1], [Fraction(3, 2), Fraction(1, 4)]], ["1/2", "1/2"]
    )
    inst = with_output(atomic, two_feature_map(), nuL)
    theta_boxes = [(0.5, 1.5), (-1.0, 0.25)]
    K = C.contraction_constant(inst, hb, wb, theta_boxes, splits=8)
    out = C.map_bounds(inst.sigmaL, hb[-1], theta_boxes, splits=8)
    assert K.constants["Ah"][3] == out["Ah"] and K.constants["Mh"][3] == out["Mh"]
    assert K.constants["S_L"] == out["S"]
    exact = recursion(inst.L, K.constants, Fraction)
    assert all(is_smallest_float_above(k, e) for k, e in zip(K.K_layers, exact))

    # One pair stands for every coordinate: the cube around both ranges.
    cube = C.contraction_constant(inst, hb, wb, (-1.0, 1.5), splits=8)
    same = C.contraction_constant(inst, hb, wb, [(-1.0, 1.5)] * 2, splits=8)
    assert cube.K == same.K


def test_a_theta_box_of_the_wrong_dimension_names_the_field(default_boxes):
    atomic, (hb, wb, _) = default_boxes
    nuL = atoms([[1, 0], [2, 1]], ["1/2", "1/2"])
    inst = with_output(atomic, two_feature_map(), nuL)
    with pytest.raises(ValueError, match=r"theta_box has 3 intervals.*p_L=2"):
        C.contraction_constant(inst, hb, wb, [(0, 1)] * 3, splits=4)

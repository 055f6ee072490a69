"""Hypothesis strategies for instances, networks and layered states.

Ranges are bounded so that every example is meaningful: rational atoms in
[-1, 1] with small denominators, 1-3 atoms per law, 1-3 data points, L from
2 to 5. Exact instances use polynomial maps (the registry's ``affine``,
``cubic``, ``linear`` and a user map ``quadratic2`` with p = 2) so that every
drift is a rational number.
"""

from __future__ import annotations

from fractions import Fraction

import sympy
from hypothesis import strategies as st

from mfdeep.model import (Schedule, atoms, data_set, get_map, make_instance,
                          make_map, map_names, register_map)

_h, _a, _b = sympy.symbols("h a b")
if "quadratic2" not in map_names("inner"):
    register_map("inner", "quadratic2", make_map(
        "inner", "quadratic2", _a * _h + _b * (1 - _h**2) / 2, [_h], [_a, _b], "no",
        "a h + b (1 - h^2)/2: polynomial, p = 2, for property tests"))

def _depth(draw, L):
    """L given as None (2 .. 5), an int, or a strategy of ints."""
    if L is None:
        return draw(st.integers(2, 5))
    if isinstance(L, st.SearchStrategy):
        return draw(L)
    return L


rationals = st.fractions(min_value=-1, max_value=1, max_denominator=4)
positive_weights = st.integers(min_value=1, max_value=4)


@st.composite
def atomic_laws(draw, dim, max_atoms=2):
    """An :class:`~mfdeep.model.laws.Atoms` law on R^dim with rational atoms."""
    n = draw(st.integers(1, max_atoms))
    points = draw(st.lists(st.lists(rationals, min_size=dim, max_size=dim),
                           min_size=n, max_size=n, unique_by=tuple))
    raw = draw(st.lists(positive_weights, min_size=n, max_size=n))
    return atoms(points, [Fraction(w, sum(raw)) for w in raw])


@st.composite
def exact_instances(draw, L=None, max_atoms=2):
    """Polynomial instances with rational atoms and data (exact arithmetic)."""
    L = _depth(draw, L)
    d_x = draw(st.integers(1, 2))
    n_data = draw(st.integers(1, 3))
    x = draw(st.lists(st.lists(rationals, min_size=d_x, max_size=d_x),
                      min_size=n_data, max_size=n_data))
    y = draw(st.lists(rationals, min_size=n_data, max_size=n_data))
    inner = [get_map("inner", draw(st.sampled_from(["cubic", "quadratic2"])))
             for _ in range(L - 1)]
    sigma0 = get_map("input", "affine", d_x)
    sigmaL = get_map("output", "linear")
    nu0 = draw(atomic_laws(d_x + 1, max_atoms))
    m = [draw(atomic_laws(s.p, max_atoms)) for s in inner]
    nuL = draw(atomic_laws(1, max_atoms))
    T = draw(st.sampled_from([Fraction(1, 4), Fraction(1, 2), Fraction(1)]))
    # Both schedules have rational Taylor coefficients, so both stay exact.
    schedule = draw(st.sampled_from([
        Schedule("constant", Fraction(1)), Schedule("constant", Fraction(1, 2)),
        Schedule("decay", Fraction(1), Fraction(1, 2))]))
    return make_instance(f"exact-prop-L{L}", L, sigma0, inner, sigmaL,
                         data_set(x, y), nu0, m, nuL, T=T, schedule=schedule)


@st.composite
def smooth_instances(draw, L=None):
    """Built-in tanh-type and MLP instances at depth L with 2 sampled atoms per law."""
    from mfdeep.model import load_instance, with_depth

    L = _depth(draw, L)
    name = draw(st.sampled_from(["default", "l2", "mlp"]))
    seed = draw(st.integers(0, 2**16))
    return with_depth(load_instance(name), L).sampled(2, seed)


seeds = st.integers(min_value=0, max_value=2**31 - 1)

"""Built-in instances, laws and compiled programs."""

import dataclasses
from fractions import Fraction

import pytest
import sympy

from mfdeep.model import builtin_names, get_map, load_instance, map_names, with_depth
from mfdeep.model.laws import monte_carlo


def test_the_builtin_instances_exist_and_say_whether_the_theorem_covers_them():
    names = set(builtin_names())
    assert {"default", "mlp", "exact", "l2"} <= names
    covered = {n: load_instance(n).covered for n in names}
    assert covered["default"] and covered["l2"]
    assert not covered["mlp"] and not covered["exact"]


def test_the_exact_instance_is_polynomial_and_the_default_is_not():
    assert load_instance("exact").is_polynomial
    assert not load_instance("default").is_polynomial
    assert load_instance("l2").L == 2


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_gauss_hermite_atoms_integrate_polynomials_exactly(order):
    inst = load_instance("default")
    law = inst.m[0].atomic(order)
    assert sum(law.weights) == 1
    # Coordinate 0 is N(1, 1/4): E[X^k] for k <= 2 order - 1 must be exact
    # up to the float64 rounding of the nodes.
    mean, var = 1.0, 0.25
    moments = {0: 1, 1: mean, 2: var + mean**2, 3: mean**3 + 3 * mean * var}
    for k, expected in moments.items():
        if k <= 2 * order - 1:
            got = sum(float(w) * float(p[0]) ** k for p, w in zip(law.points, law.weights))
            assert got == pytest.approx(expected, rel=1e-13, abs=1e-13)


def test_gauss_legendre_atoms_integrate_the_uniform_law():
    law = load_instance("default").nuL.atomic(3)
    got = sum(float(w) * float(p[0]) ** 4 for p, w in zip(law.points, law.weights))
    assert got == pytest.approx((1.5**5 - 0.5**5) / 5, rel=1e-13)


def test_monte_carlo_atoms_are_reproducible_from_the_seed():
    law = load_instance("default").nu0
    a, b, c = monte_carlo(law, 5, 1), monte_carlo(law, 5, 1), monte_carlo(law, 5, 2)
    assert a == b and a != c and sum(a.weights) == 1


@pytest.mark.parametrize("kind", ["input", "inner", "output"])
def test_compiled_programs_agree_with_sympy(kind):
    from mfdeep.reference.contexts import ExactOps

    ops = ExactOps()
    for name in map_names(kind):
        edge_map = get_map(kind, name, 2)
        if not edge_map.is_polynomial:
            continue
        args = [Fraction(k + 2, 3) for k in range(len(edge_map.value.args))]
        got = edge_map.value.bind(ops)(*[ops.convert(a) for a in args])
        symbols = edge_map.variables + edge_map.params
        expected = edge_map.expr.subs(dict(zip(symbols, args)))
        assert Fraction(str(got)) == Fraction(str(expected))


@pytest.mark.parametrize("name", ["cubic", "mlp", "bounded2"])
def test_derivative_programs_are_the_symbolic_derivatives(name):
    from mfdeep.reference.contexts import MPOps

    ops = MPOps(40)
    edge_map = get_map("inner", name)
    symbols = edge_map.variables + edge_map.params
    args = [Fraction(k + 1, 7) for k in range(len(symbols))]
    at = dict(zip(symbols, args))
    values = [ops.convert(a) for a in args]
    pairs = [(edge_map.d_h, edge_map.variables[0])] + list(zip(edge_map.d_w,
                                                               edge_map.params))
    for program, var in pairs:
        got = program.bind(ops)(*values)
        expected = sympy.diff(edge_map.expr, var).subs(at).evalf(40)
        assert abs(float(got - ops.ctx.mpf(str(expected)))) < 1e-30


def test_with_depth_extends_and_truncates():
    inst = load_instance("exact")
    assert with_depth(inst, 5).L == 5 and len(with_depth(inst, 5).m) == 4
    assert with_depth(inst, 2).L == 2


def test_decay_schedule_stays_exact_at_integer_times():
    # Regression (found by the property suite): 1 / (1 + 2 t) at t = 0 gave
    # the float 1.0, which exact rationals cannot multiply.
    from fractions import Fraction

    import flint

    from mfdeep.model import Schedule
    from mfdeep.reference.contexts import ExactOps

    alpha = Schedule("decay", Fraction(1), Fraction(1, 2)).program.bind(ExactOps())
    assert isinstance(alpha(0), flint.fmpq) and alpha(0) == 1
    assert alpha(flint.fmpq(1, 2)) == flint.fmpq(1, 2)


def test_atomic_and_polynomial_are_separate_properties():
    # Polynomial maps say nothing about the laws: `exact` is both, its maps
    # with Gaussian laws only polynomial, `default` on quadrature atoms only
    # atomic.
    from mfdeep.model import gaussian

    exact = load_instance("exact")
    assert exact.is_polynomial and exact.is_atomic
    smooth = dataclasses.replace(exact, nu0=gaussian([1, 0], [1, 1]))
    assert smooth.is_polynomial and not smooth.is_atomic
    default = load_instance("default")
    assert not default.is_atomic and default.atomic(3).is_atomic
    assert not default.atomic(3).is_polynomial

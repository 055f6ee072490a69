"""Edge maps, defined once as SymPy expressions, and their registry.

Notation (MODEL.md section 1): the input map sigma0(x, theta) of the frozen
edges into hidden layer 1, the inner maps sigma_l(h, w) of the trained edges,
the output map sigmaL(h, theta) of the frozen edges out of hidden layer L.
Variables are named ``x0, x1, ...`` (input), ``h`` (a neuron state),
``w0, w1, ...`` (an inner weight, dimension p) and ``theta0, ...``
(a frozen feature).

A map is compiled into :class:`~mfdeep.model.program.Program` objects for its
value and the derivatives the dynamics needs (d/dh, d/dw_k); backends bind
those programs to their own number systems.

Theory coverage (``covered``): ``"yes"`` for maps that are bounded with
bounded Lipschitz first derivatives jointly in their arguments,
``"bounded_features"`` for maps covered when their frozen feature has bounded
support, ``"no"`` otherwise (the polynomial and the classical MLP maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from mfdeep.errors import InstanceError
from mfdeep.model.program import Program, compile_expr, compile_exprs

KINDS = ("input", "inner", "output")
COVERAGE = ("yes", "bounded_features", "no")

h = sympy.Symbol("h")


def x_symbols(d_x):
    """Symbols x0 ... x{d_x-1} of an input point."""
    return tuple(sympy.Symbol(f"x{k}") for k in range(d_x))


def w_symbols(p):
    """Symbols w0 ... w{p-1} of an inner weight."""
    return tuple(sympy.Symbol(f"w{k}") for k in range(p))


def theta_symbols(p):
    """Symbols theta0 ... theta{p-1} of a frozen feature."""
    return tuple(sympy.Symbol(f"theta{k}") for k in range(p))


@dataclass(frozen=True)
class EdgeMap:
    """One edge map with its compiled value and derivative programs.

    Attributes
    ----------
    name, kind : str
        Registry name; one of ``"input"``, ``"inner"``, ``"output"``.
    expr : sympy.Expr
        The map, in ``variables`` (x's or h) and ``params`` (theta's or w's).
    p : int
        Dimension of the parameter (weight or feature) of one edge.
    value : Program
        sigma(variables..., params...).
    d_h : Program or None
        d sigma / d h (inner and output maps).
    d_w : tuple of Program
        d sigma / d w_k, k < p (inner maps only).
    joint : Program
        (sigma, d_h sigma, d_w0 sigma, ...) in one pass with shared
        subexpressions (inner and output maps; sigma alone for input maps).
    features : Program or None
        For inner maps linear in w, sigma(h, w) = sum_k w_k f_k(h): the
        program h -> (f_0, ..., f_{p-1}, f_0', ..., f_{p-1}'). Backends use it
        to turn the sums over edges into matrix products. None otherwise.
    """

    name: str
    kind: str
    expr: object
    variables: tuple
    params: tuple
    covered: str
    description: str
    value: Program
    d_h: Program | None
    d_w: tuple
    joint: Program
    features: Program | None = None

    @property
    def linear_in_w(self):
        return self.features is not None

    @property
    def p(self):
        return len(self.params)

    @property
    def is_polynomial(self):
        programs = [self.value] + ([self.d_h] if self.d_h else []) + list(self.d_w)
        return all(q.is_polynomial for q in programs)


def make_map(kind, name, expr, variables, params, covered="no", description=""):
    """Build an :class:`EdgeMap` from a SymPy expression.

    Parameters
    ----------
    kind : {"input", "inner", "output"}
    expr : sympy.Expr
    variables : sequence of sympy.Symbol
        ``x`` symbols for an input map; the single state symbol otherwise.
    params : sequence of sympy.Symbol
        The edge's parameter: theta (input, output) or w (inner), length >= 1.
    covered : {"yes", "bounded_features", "no"}
        Whether the convergence theorem covers the map (see module doc).

    Examples
    --------
    >>> import sympy
    >>> hh, a, b = sympy.symbols("hh a b")
    >>> m = make_map("inner", "soft", sympy.tanh(a) * sympy.tanh(hh + b), [hh], [a, b])
    >>> m.p
    2
    """
    if kind not in KINDS:
        raise InstanceError(f"map kind={kind!r} is unknown; use one of {KINDS}")
    if covered not in COVERAGE:
        raise InstanceError(f"covered={covered!r} is unknown; use one of {COVERAGE}")
    variables, params = tuple(variables), tuple(params)
    if not params:
        raise InstanceError(f"map {name!r} has no parameters; give at least one")
    if kind != "input" and len(variables) != 1:
        raise InstanceError(
            f"{kind} map {name!r} takes one state variable, got {len(variables)}"
        )

    # Rename the user's symbols to the canonical ones, then compile.
    canon_vars = x_symbols(len(variables)) if kind == "input" else (h,)
    canon_params = (w_symbols if kind == "inner" else theta_symbols)(len(params))
    expr = sympy.sympify(expr).xreplace(
        dict(zip(variables + params, canon_vars + canon_params))
    )
    args = canon_vars + canon_params
    value = compile_expr(expr, args)
    d_h = compile_expr(sympy.diff(expr, h), args) if kind != "input" else None
    d_w = (
        tuple(compile_expr(sympy.diff(expr, w), args) for w in canon_params)
        if kind == "inner"
        else ()
    )
    derivatives = [] if kind == "input" else [sympy.diff(expr, h)]
    if kind == "inner":
        derivatives += [sympy.diff(expr, w) for w in canon_params]
    joint = compile_exprs([expr, *derivatives], args)
    features = _linear_features(expr, canon_params) if kind == "inner" else None
    return EdgeMap(name, kind, expr, canon_vars, canon_params, covered, description,
                   value, d_h, d_w, joint, features)


def _linear_features(expr, params):
    """Program h -> (f_k, f_k') when expr = sum_k w_k f_k(h); None otherwise."""
    f = [sympy.diff(expr, w) for w in params]
    if any(fk.free_symbols & set(params) for fk in f):
        return None
    if sympy.simplify(expr - sum(w * fk for w, fk in zip(params, f))) != 0:
        return None
    return compile_exprs(f + [sympy.diff(fk, h) for fk in f], (h,))


# The registry: kind -> name -> factory(d_x) -> EdgeMap.
_REGISTRY: dict[str, dict] = {kind: {} for kind in KINDS}


def register_map(kind, name, factory):
    """Add a map to the registry so that instances and TOML files can name it.

    ``factory`` is an :class:`EdgeMap` or a callable ``d_x -> EdgeMap`` (input
    maps usually depend on the input dimension).
    """
    if kind not in KINDS:
        raise InstanceError(f"map kind={kind!r} is unknown; use one of {KINDS}")
    if isinstance(factory, EdgeMap):
        edge_map = factory
        factory = lambda d_x: edge_map  # noqa: E731
    _REGISTRY[kind][name] = factory


def get_map(kind, name, d_x=1):
    """Look up a registered map by name (strings are never evaluated)."""
    if kind not in KINDS:
        raise InstanceError(f"map kind={kind!r} is unknown; use one of {KINDS}")
    try:
        factory = _REGISTRY[kind][name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY[kind]))
        raise InstanceError(
            f"{kind} map {name!r} is not registered; known {kind} maps: {known}. "
            "Register your own with mfdeep.model.register_map"
        ) from None
    return factory(d_x)


def map_names(kind):
    return sorted(_REGISTRY[kind])


def _affine(theta, x):
    return sum(t * v for t, v in zip(theta, x)) + theta[-1]


def _input_tanh_affine(d_x):
    x, theta = x_symbols(d_x), theta_symbols(d_x + 1)
    return make_map("input", "tanh_affine", sympy.tanh(_affine(theta, x)), x, theta,
                    "yes", "tanh(theta . (x, 1))")


def _input_affine(d_x):
    x, theta = x_symbols(d_x), theta_symbols(d_x + 1)
    return make_map("input", "affine", _affine(theta, x), x, theta,
                    "bounded_features", "theta . (x, 1)")


w0, w1 = w_symbols(2)
(t0,) = theta_symbols(1)
register_map("input", "tanh_affine", _input_tanh_affine)
register_map("input", "affine", _input_affine)
register_map("inner", "mlp", make_map(
    "inner", "mlp", w0 * sympy.tanh(h), (h,), (w0,), "no",
    "w tanh(h): the classical MLP with states as pre-activations"))
register_map("inner", "bounded2", make_map(
    "inner", "bounded2", sympy.tanh(w0) * sympy.tanh(h + w1), (h,), (w0, w1), "yes",
    "tanh(w0) tanh(h + w1): bounded, bounded Lipschitz derivatives in (h, w)"))
register_map("inner", "cubic", make_map(
    "inner", "cubic", w0 * (h - h**3 / 3), (h,), (w0,), "no",
    "w (h - h^3/3): polynomial, for exact rational work"))
register_map("output", "theta_tanh", make_map(
    "output", "theta_tanh", t0 * sympy.tanh(h), (h,), (t0,), "bounded_features",
    "theta tanh(h)"))
register_map("output", "linear", make_map(
    "output", "linear", t0 * h, (h,), (t0,), "no", "theta h"))

"""Compile SymPy expressions into small programs that any number system can run.

The model defines every formula (edge maps, their derivatives, the loss, the
schedule) once, as a SymPy expression. Neither backend evaluates SymPy trees:
each expression is translated here, once, into Python source that calls
``ops.tanh``, ``ops.exp`` and so on, with rational constants hoisted into a
table. A backend binds the program to its own ``ops`` namespace (exact
rationals, mpmath, Arb balls, power series, torch tensors) and gets a plain
callable.

Only a whitelist of SymPy nodes is accepted; anything else raises
:class:`~mfdeep.errors.InstanceError` naming the node. The generated source
comes from the expression tree, never from a user string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import sympy

from mfdeep.errors import InstanceError

#: SymPy functions a program may call, by the attribute name in ``ops``.
FUNCTIONS = {
    sympy.tanh: "tanh",
    sympy.exp: "exp",
    sympy.log: "log",
    sympy.sin: "sin",
    sympy.cos: "cos",
    sympy.sinh: "sinh",
    sympy.cosh: "cosh",
}


@dataclass(frozen=True)
class Program:
    """A compiled scalar formula f(args) with exact rational constants.

    Attributes
    ----------
    args : tuple of str
        Names of the SymPy symbols, in call order.
    source : str
        The generated Python function (for reading and debugging).
    constants : tuple of Fraction
        Rational constants referenced as ``c[k]`` in ``source``.
    functions : frozenset of str
        The ``ops`` functions the program calls (``sqrt`` included).
    divides : bool
        Whether the program divides by a non-constant (negative powers).
    """

    args: tuple
    source: str
    constants: tuple
    functions: frozenset
    divides: bool
    _code: object = field(repr=False, compare=False)

    @property
    def is_polynomial(self):
        """True when the formula is a polynomial with rational coefficients."""
        return not self.functions and not self.divides

    def bind(self, ops):
        """Return ``f(*args)`` evaluated with the number system ``ops``.

        ``ops`` provides ``rational(p, q)`` and the functions the program uses.
        """
        missing = sorted(name for name in self.functions if not hasattr(ops, name))
        if missing:
            raise InstanceError(
                f"number system {type(ops).__name__} has no {missing}; "
                "use a context that supports these functions"
            )
        c = tuple(ops.rational(q.numerator, q.denominator) for q in self.constants)
        namespace = {"__builtins__": {}}
        exec(self._code, namespace)  # generated from a SymPy tree, see module doc
        inner = namespace["_f"]

        def f(*values):
            return inner(ops, c, *values)

        f.program = self
        return f


def compile_expr(expr, symbols):
    """Translate the SymPy ``expr`` in ``symbols`` into a :class:`Program`.

    Parameters
    ----------
    expr : sympy.Expr
        Built from symbols, integers, rationals, +, *, integer powers,
        square roots and the functions in :data:`FUNCTIONS`.
    symbols : sequence of sympy.Symbol
        The arguments, in call order; every free symbol of ``expr`` must be
        among them.
    """
    return _compile([sympy.sympify(expr)], tuple(symbols), single=True)


def compile_exprs(exprs, symbols):
    """Compile several expressions into one program returning a tuple.

    Common subexpressions (a ``tanh(h + w1)`` shared by a map and its
    derivatives, say) are computed once (``sympy.cse``), which matters when
    each evaluation is a power series or a large tensor.
    """
    return _compile([sympy.sympify(e) for e in exprs], tuple(symbols), single=False)


def _compile(exprs, symbols, single):
    free = set().union(*(e.free_symbols for e in exprs)) - set(symbols)
    if free:
        names = sorted(str(s) for s in free)
        shown = exprs[0] if single else exprs
        raise InstanceError(
            f"expression {shown} has free symbols {names} that are not arguments "
            f"{[str(s) for s in symbols]}; use only the documented variable names"
        )
    argnames = {s: f"a{k}" for k, s in enumerate(symbols)}
    constants: list[Fraction] = []
    used: set[str] = set()

    # Shared subexpressions become local variables t0, t1, ... of the program.
    lines = []
    if single:
        reduced = exprs
    else:
        temps = sympy.numbered_symbols("_cse")
        replacements, reduced = sympy.cse(exprs, symbols=temps, order="none")
        for k, (sym, sub) in enumerate(replacements):
            lines.append(f"    t{k} = {_emit(sub, argnames, constants, used)}")
            argnames[sym] = f"t{k}"
    bodies = [_emit(e, argnames, constants, used) for e in reduced]
    body = bodies[0] if single else "(" + ", ".join(bodies) + ",)"
    params = ", ".join(["ops", "c"] + [f"a{k}" for k in range(len(symbols))])
    source = f"def _f({params}):\n" + "".join(ln + "\n" for ln in lines)
    source += f"    return {body}\n"
    code = compile(source, "<mfdeep program>", "exec")
    divides = "div" in used
    used.discard("div")
    return Program(
        args=tuple(str(s) for s in symbols),
        source=source,
        constants=tuple(constants),
        functions=frozenset(used),
        divides=divides,
        _code=code,
    )


def _emit(e, argnames, constants, used):
    # Leaves: symbols, integers, rationals.
    if e.is_Symbol:
        return argnames[e]
    if e.is_Integer:
        return f"({int(e)})"
    if e.is_Rational:
        constants.append(Fraction(int(e.p), int(e.q)))
        return f"c[{len(constants) - 1}]"
    if e.is_Float:
        raise InstanceError(
            f"floating constant {e} in a map expression; write it as "
            "sympy.Rational so exact backends stay exact"
        )

    # Powers: integer exponents, and square roots.
    if e.is_Pow:
        base, exponent = e.args
        b = _emit(base, argnames, constants, used)
        if exponent.is_Integer:
            k = int(exponent)
            if k >= 0:
                return f"({b}) ** {k}"
            used.add("div")
            # The numerator is a program constant, so that 1 / x stays in the
            # number system even when x is a Python int (1 / 1 is a float).
            constants.append(Fraction(1))
            return f"(c[{len(constants) - 1}] / ({b}) ** {-k})"
        if exponent == sympy.Rational(1, 2):
            used.add("sqrt")
            return f"ops.sqrt({b})"
        if exponent == sympy.Rational(-1, 2):
            used.update(("sqrt", "div"))
            constants.append(Fraction(1))
            return f"(c[{len(constants) - 1}] / ops.sqrt({b}))"
        raise InstanceError(
            f"power {e} has exponent {exponent}; only integers and +-1/2 are "
            "supported in map expressions"
        )

    # Sums and products.
    if e.is_Add or e.is_Mul:
        args = [_emit(a, argnames, constants, used) for a in e.args]
        return "(" + (" + " if e.is_Add else " * ").join(args) + ")"

    # Whitelisted functions of one argument.
    for fn, name in FUNCTIONS.items():
        if e.func == fn:
            used.add(name)
            return f"ops.{name}({_emit(e.args[0], argnames, constants, used)})"
    raise InstanceError(
        f"unsupported node {e.func.__name__} in expression {e}; supported: "
        "+, *, integer powers, sqrt, " + ", ".join(sorted(FUNCTIONS.values()))
    )

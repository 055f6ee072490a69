"""Number systems of the reference backend.

A context (``ops``) turns the model's exact rationals into its own numbers
and supplies the functions that compiled map programs call:

* :class:`ExactOps` -- python-flint ``fmpq`` rationals; polynomial maps only.
* :class:`MPOps` -- mpmath numbers in a private context of ``dps`` digits
  (never the global ``mpmath.mp``), for high-precision values that are not
  certified.
* :class:`ArbOps` -- Arb balls (python-flint ``arb``) at ``prec`` bits: every
  result is an enclosure of the true value.

Precision is local: ``MPOps`` owns an ``mpmath.MPContext``; ``ArbOps`` sets
flint's working precision only inside ``with ops.working():`` blocks.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction

import flint
import mpmath

from mfdeep.errors import NotExactError


class ExactOps:
    """Exact rational arithmetic (python-flint ``fmpq``)."""

    name = "exact"
    exact = True

    def rational(self, p, q=1):
        return flint.fmpq(p, q)

    def convert(self, value):
        value = Fraction(value)
        return flint.fmpq(value.numerator, value.denominator)

    def working(self):
        return contextlib.nullcontext()

    def __getattr__(self, name):
        if name in ("tanh", "exp", "log", "sin", "cos", "sinh", "cosh", "sqrt"):
            raise NotExactError(
                f"{name} has no exact rational value; use MPOps or ArbOps for "
                "instances with non-polynomial maps or the pseudo-Huber loss"
            )
        raise AttributeError(name)


class MPOps:
    """mpmath arithmetic at ``dps`` decimal digits, in a private context."""

    name = "mpmath"
    exact = False

    def __init__(self, dps=30):
        self.ctx = mpmath.MPContext()
        self.ctx.dps = dps
        self.dps = dps
        for fn in ("tanh", "exp", "log", "sin", "cos", "sinh", "cosh", "sqrt"):
            setattr(self, fn, getattr(self.ctx, fn))

    def rational(self, p, q=1):
        return self.ctx.mpf(p) / q

    def convert(self, value):
        value = Fraction(value)
        return self.ctx.mpf(value.numerator) / value.denominator

    def working(self):
        return contextlib.nullcontext()

    def to_float(self, x):
        return float(x)


class ArbOps:
    """Arb ball arithmetic at ``prec`` bits; results enclose the true values.

    Wrap computations in ``with ops.working():`` so that flint works at
    ``prec`` bits; the previous precision is restored on exit.
    """

    name = "arb"
    exact = False

    def __init__(self, prec=128):
        self.prec = prec

    @contextlib.contextmanager
    def working(self):
        old = flint.ctx.prec
        flint.ctx.prec = self.prec
        try:
            yield self
        finally:
            flint.ctx.prec = old

    def rational(self, p, q=1):
        return flint.arb(flint.fmpq(p, q))

    def convert(self, value):
        value = Fraction(value)
        return flint.arb(flint.fmpq(value.numerator, value.denominator))

    def tanh(self, x):
        return x.tanh()

    def exp(self, x):
        return x.exp()

    def log(self, x):
        return x.log()

    def sin(self, x):
        return x.sin()

    def cos(self, x):
        return x.cos()

    def sinh(self, x):
        return x.sinh()

    def cosh(self, x):
        return x.cosh()

    def sqrt(self, x):
        return x.sqrt()

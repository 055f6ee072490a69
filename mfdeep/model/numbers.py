"""Exact conversion of user numbers to ``Fraction``, with errors that name the field."""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

from mfdeep.errors import InstanceError


def to_fraction(value, field):
    """Return ``value`` as an exact ``Fraction``.

    Accepts int, Fraction, finite float (converted exactly, so 0.1 becomes
    the dyadic rational nearest 1/10), SymPy rationals and strings such as
    ``"3/4"`` or ``"-0.25"`` (parsed as numbers, never evaluated).
    """
    if isinstance(value, bool):
        raise InstanceError(f"{field}={value!r} is a bool; give a number")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    if isinstance(value, str):
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise InstanceError(
                f"{field}={value!r} is not a number; write an integer, a decimal "
                "or a fraction such as '3/4'"
            ) from None
    if hasattr(value, "p") and hasattr(value, "q") and not callable(value.p):
        return Fraction(int(value.p), int(value.q))  # sympy.Rational, flint.fmpq
    if isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            raise InstanceError(f"{field}={value!r} is not finite; give a finite number")
        return Fraction(x)
    raise InstanceError(
        f"{field}={value!r} has type {type(value).__name__}; give an int, float, "
        "Fraction or a string such as '3/4'"
    )


def to_fraction_vector(values, field, dim=None):
    """Convert a sequence of numbers; check its length when ``dim`` is given."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        values = [values]
    out = tuple(to_fraction(v, f"{field}[{k}]") for k, v in enumerate(values))
    if dim is not None and len(out) != dim:
        raise InstanceError(
            f"{field} has length {len(out)} but dimension {dim} is required; "
            f"give {dim} numbers"
        )
    return out

"""Exceptions shared by every part of mfdeep."""


class MfdeepError(Exception):
    """Base class of the errors mfdeep raises on purpose."""


class InstanceError(MfdeepError, ValueError):
    """An instance, law, map or file is malformed; the message names the field."""


class NotExactError(MfdeepError, TypeError):
    """An exact (rational) computation met a map that is not polynomial."""


class DivergenceError(MfdeepError, FloatingPointError):
    """A run diverged: a NaN or Inf, or weights beyond a stated bound.

    The message names the step, the layer and the replica.
    """


class NonFiniteError(DivergenceError):
    """A NaN or Inf appeared; the message names the step and the layer."""

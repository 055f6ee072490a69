"""Truncated power series in t over any reference number system.

``Series`` holds the coefficients ``c[0..n]`` of ``sum c[k] t^k + O(t^{n+1})``.
Arithmetic truncates at degree ``n``. :class:`SeriesOps` lets compiled map
programs run on series: a map applied to series-valued weights gives the
series of the map along the trajectory. Transcendental functions use the
classical recurrences obtained from their differential equations, e.g. for
u = tanh(s): u' = (1 - u^2) s', so k u_k = sum_{j=1..k} j s_j v_{k-j} with
v = 1 - u^2.

Exact series (``fmpq`` coefficients) multiply through python-flint's
``fmpq_poly.mul_low``; other coefficient types use a plain convolution.
"""

from __future__ import annotations

import flint


class Series:
    """A power series truncated at degree ``n`` with coefficient list ``c``."""

    __slots__ = ("c", "n")

    def __init__(self, c, n):
        c = list(c)[: n + 1]
        zero = c[0] * 0 if c else 0
        self.c = c + [zero] * (n + 1 - len(c))
        self.n = n

    # Construction and access.
    @classmethod
    def constant(cls, value, n):
        return make_series([value], n)

    def __repr__(self):
        return f"Series({self.c!r}, n={self.n})"

    def coeffs(self):
        return list(self.c)

    def __call__(self, t):
        """Evaluate the truncated polynomial at ``t`` (Horner)."""
        out = self.c[-1]
        for a in reversed(self.c[:-1]):
            out = out * t + a
        return out

    def _lift(self, other):
        if isinstance(other, Series):
            return other
        return make_series([other], self.n)

    # Ring operations.
    def __add__(self, other):
        if isinstance(other, Series):
            return make_series([a + b for a, b in zip(self.c, other.c)], self.n)
        return make_series([self.c[0] + other] + self.c[1:], self.n)

    __radd__ = __add__

    def __neg__(self):
        return make_series([-a for a in self.c], self.n)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, Series):
            return make_series([a * other for a in self.c], self.n)
        return make_series(_convolve(self.c, other.c, self.n), self.n)

    __rmul__ = __mul__

    def __pow__(self, k):
        if not isinstance(k, int) or k < 0:
            raise TypeError(f"Series ** {k!r}: only non-negative integer powers")
        out, base = None, self
        while k:
            if k & 1:
                out = base if out is None else out * base
            k >>= 1
            if k:
                base = base * base
        return out if out is not None else self._lift(self.c[0] * 0 + 1)

    def __truediv__(self, other):
        if isinstance(other, Series):
            return self * other.inv()
        return make_series([a / other for a in self.c], self.n)

    def __rtruediv__(self, other):
        return self.inv() * other

    # Calculus.
    def integral(self):
        """Antiderivative vanishing at t = 0, truncated at degree n."""
        c = self.c
        return make_series([c[0] * 0] + [c[k] / (k + 1) for k in range(self.n)], self.n)

    def inv(self):
        c, n = self.c, self.n
        q = [1 / c[0]]
        for k in range(1, n + 1):
            q.append(-sum(c[j] * q[k - j] for j in range(1, k + 1)) * q[0])
        return make_series(q, n)


class ExactSeries(Series):
    """Series with ``fmpq`` coefficients multiplied by ``fmpq_poly.mul_low``."""

    __slots__ = ()

    def __mul__(self, other):
        if not isinstance(other, Series):
            return ExactSeries([a * other for a in self.c], self.n)
        prod = flint.fmpq_poly(self.c).mul_low(flint.fmpq_poly(other.c), self.n + 1)
        return ExactSeries(prod.coeffs() or [flint.fmpq(0)], self.n)

    __rmul__ = __mul__


def make_series(c, n):
    if c and isinstance(c[0], flint.fmpq):
        return ExactSeries(c, n)
    return Series(c, n)


def _convolve(a, b, n):
    return [sum(a[j] * b[k - j] for j in range(k + 1)) for k in range(n + 1)]


class SeriesOps:
    """Run compiled programs on :class:`Series` over the number system ``base``."""

    def __init__(self, base, n):
        self.base = base
        self.n = n
        self.name = f"series[{base.name}]"
        self.exact = base.exact

    def rational(self, p, q=1):
        return self.base.rational(p, q)

    def convert(self, value):
        return self.base.convert(value)

    def working(self):
        return self.base.working()

    def variable(self, t0):
        """The series of t around ``t0``: t0 + s."""
        return make_series([t0, self.base.rational(1)], self.n)

    def constant(self, value):
        return make_series([value], self.n)

    def _unary(self, x, scalar_fn, series_fn):
        if not isinstance(x, Series):
            return scalar_fn(x)
        return make_series(series_fn(x.c, x.n), x.n)

    def exp(self, x):
        def rec(s, n):
            e = [self.base.exp(s[0])]
            for k in range(1, n + 1):
                e.append(sum(j * s[j] * e[k - j] for j in range(1, k + 1)) / k)
            return e
        return self._unary(x, lambda v: self.base.exp(v), rec)

    def tanh(self, x):
        def rec(s, n):
            u = [self.base.tanh(s[0])]
            v = [1 - u[0] * u[0]]
            for k in range(1, n + 1):
                u.append(sum(j * s[j] * v[k - j] for j in range(1, k + 1)) / k)
                v.append(-sum(u[i] * u[k - i] for i in range(k + 1)))
            return u
        return self._unary(x, lambda v: self.base.tanh(v), rec)

    def _sin_cos(self, s, n, sign):
        # d sn = cs ds, d cs = sign * sn ds (sign -1: sin/cos, +1: sinh/cosh)
        hyper = sign > 0
        sn = [self.base.sinh(s[0]) if hyper else self.base.sin(s[0])]
        cs = [self.base.cosh(s[0]) if hyper else self.base.cos(s[0])]
        for k in range(1, n + 1):
            sn.append(sum(j * s[j] * cs[k - j] for j in range(1, k + 1)) / k)
            cs.append(sign * sum(j * s[j] * sn[k - 1 - (j - 1)] for j in range(1, k + 1)) / k)
        return sn, cs

    def sin(self, x):
        return self._unary(x, self.base.sin, lambda s, n: self._sin_cos(s, n, -1)[0])

    def cos(self, x):
        return self._unary(x, self.base.cos, lambda s, n: self._sin_cos(s, n, -1)[1])

    def sinh(self, x):
        return self._unary(x, self.base.sinh, lambda s, n: self._sin_cos(s, n, 1)[0])

    def cosh(self, x):
        return self._unary(x, self.base.cosh, lambda s, n: self._sin_cos(s, n, 1)[1])

    def log(self, x):
        def rec(s, n):
            lg = [self.base.log(s[0])]
            for k in range(1, n + 1):
                acc = k * s[k] - sum(s[j] * (k - j) * lg[k - j] for j in range(1, k))
                lg.append(acc / (k * s[0]))
            return lg
        return self._unary(x, self.base.log, rec)

    def sqrt(self, x):
        def rec(s, n):
            r = [self.base.sqrt(s[0])]
            for k in range(1, n + 1):
                r.append((s[k] - sum(r[j] * r[k - j] for j in range(1, k))) / (2 * r[0]))
            return r
        return self._unary(x, self.base.sqrt, rec)

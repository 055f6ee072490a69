"""The torch number system for compiled model programs.

Constants are Python floats, so the dtype and device of every result follow
the tensors the program is called with.
"""

from __future__ import annotations

import torch


class TorchOps:
    """``ops`` namespace binding :class:`mfdeep.model.program.Program` to torch."""

    name = "torch"
    exact = False
    tanh = staticmethod(torch.tanh)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    sinh = staticmethod(torch.sinh)
    cosh = staticmethod(torch.cosh)
    sqrt = staticmethod(torch.sqrt)

    def rational(self, p, q=1):
        return p / q


OPS = TorchOps()

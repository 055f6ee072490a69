"""An instance bound to torch: compiled maps, loss, schedule and data tensors.

Notation follows MODEL.md: ``sigma0``, ``sigma[l-1]`` (joint programs
returning sigma, dh sigma, dw_k sigma), ``sigmaL`` (sigma, dh sigma), ``dloss``,
``alpha``. Data: ``X`` (n, d_x), ``Y`` (n,), ``P`` (n,) on ``device`` in
``dtype``.
"""

from __future__ import annotations

import torch

from mfdeep.errors import InstanceError
from mfdeep.fast.ops import OPS

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def broadcasting(fn):
    """Wrap a bound program so every output has the broadcast shape of its inputs.

    A derivative that does not depend on some argument (d/dw of w tanh h,
    say) would otherwise come back with a smaller shape, or as a number.
    """

    def call(*args):
        shape = torch.broadcast_shapes(*[a.shape for a in args if torch.is_tensor(a)])
        ref = next(a for a in args if torch.is_tensor(a))
        outs = fn(*args)
        single = not isinstance(outs, tuple)
        outs = (outs,) if single else outs
        full = tuple(torch.broadcast_to(o, shape) if torch.is_tensor(o)
                     else torch.full(shape, float(o), dtype=ref.dtype, device=ref.device)
                     for o in outs)
        return full[0] if single else full

    return call


def check_dtype(dtype):
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype={dtype!r} is not a floating torch dtype; use torch.float64 for "
            "verification or torch.float32 for speed"
        )


class TorchModel:
    """Compiled programs and data of ``instance`` for one dtype and device."""

    def __init__(self, instance, dtype=torch.float64, device="cpu"):
        check_dtype(dtype)
        self.instance, self.L = instance, instance.L
        self.dtype, self.device = dtype, torch.device(device)
        self.sigma0 = broadcasting(instance.sigma0.value.bind(OPS))
        self.sigma = [broadcasting(s.joint.bind(OPS)) for s in instance.sigma]
        self.features = [broadcasting(s.features.bind(OPS)) if s.linear_in_w else None
                         for s in instance.sigma]
        self.p = [s.p for s in instance.sigma]
        self.sigmaL = broadcasting(instance.sigmaL.joint.bind(OPS))
        self.loss = instance.loss.value.bind(OPS)
        self.dloss = instance.loss.d_yhat.bind(OPS)
        self._alpha = instance.schedule.program.bind(OPS)
        kw = {"dtype": dtype, "device": self.device}
        self.X = torch.tensor([[float(v) for v in x] for x in instance.data.x], **kw)
        self.Y = torch.tensor([float(v) for v in instance.data.y], **kw)
        self.P = torch.tensor([float(v) for v in instance.data.weights], **kw)

    def alpha(self, t):
        return float(self._alpha(float(t)))

    def input_states(self, X, theta0):
        """h_1 = sigma0(x, theta0): ``X`` (R, B, d_x), ``theta0`` (R, N, p0) -> (R, B, N)."""
        xs = [X[:, :, None, k] for k in range(X.shape[-1])]
        ts = [theta0[:, None, :, k] for k in range(theta0.shape[-1])]
        return self.sigma0(*xs, *ts)

    def check_state(self, state):
        """Check that a network's tensors match the model's dtype and device."""
        self.check_tensor("theta0", state.theta0)
        self.check_tensor("thetaL", state.thetaL)
        for l, W in enumerate(state.W, start=1):
            self.check_tensor(f"W[{l}]", W)
        if len(state.W) != self.L - 1:
            raise InstanceError(
                f"the network has {len(state.W)} weight layers but the instance "
                f"has L={self.L}; draw it from the same instance"
            )

    def check_tensor(self, name, tensor, shape=None):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} has type {type(tensor).__name__}; give a tensor")
        if tensor.dtype != self.dtype or tensor.device != self.device:
            raise TypeError(
                f"{name} is {tensor.dtype} on {tensor.device} but the model is "
                f"{self.dtype} on {self.device}; build the model with the inputs' "
                "dtype and device"
            )
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise InstanceError(
                f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}"
            )

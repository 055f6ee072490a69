"""The fast torch backend (CPU and GPU; dtype and device follow the inputs).

* :mod:`.network` -- finite networks batched over replicas: draws, explicit
  forward/backward passes, the gradient-flow drift;
* :mod:`.train` -- online SGD (eager or with deferred low-rank updates) and
  population gradient flow (Euler, Heun, RK4);
* :mod:`.layered` -- the layered MV solver on atomic laws (fixed or adaptive
  RK4) and ideal particles coupled to a network;
* :mod:`.picard` -- Picard iteration on a time grid, with the metric d_lam
  (``mfdeep.fast.picard.picard``);
* :mod:`.bench` -- benchmarks against an autograd baseline.

This package never imports sympy, mpmath or python-flint: the model's
formulas reach it as compiled programs (:mod:`mfdeep.model.program`).
"""

from mfdeep.fast.layered import atomic_limit, ideal_particles, solve_limit
from mfdeep.fast.model import TorchModel
from mfdeep.fast.network import NetworkState, draw_network, population_drift
from mfdeep.fast.train import gradient_flow, sgd

__all__ = ["NetworkState", "TorchModel", "atomic_limit", "draw_network",
           "gradient_flow", "ideal_particles", "population_drift",
           "sgd", "solve_limit"]

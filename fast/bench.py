"""Benchmarks: ours against the implementation a researcher would write.

Every figure is measured in the run that prints it; competitor and ours run
side by side in one process. Nothing here is a test: timings vary with the
machine, so the ratios are reported, not asserted.

* SGD steps per second, ``mlp`` maps, L = 4, float32, batch 1: an
  ``nn.Module`` with autograd and ``torch.optim.SGD`` at learning rate
  eps alpha N^2, against :func:`mfdeep.fast.train.sgd` (eager, and with
  deferred low-rank updates).
* Memory bandwidth: bytes a step must move over the measured copy
  bandwidth. A step must read every trained weight matrix twice (forward
  and backward pass); we count 2 (L-1) N^2 itemsize bytes.
* Accuracy against cost on ``default``: the layered solver on Gauss-Hermite
  atoms and a width-N network, both against a high-accuracy solve.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from mfdeep.fast.layered import solve_limit
from mfdeep.fast.model import TorchModel
from mfdeep.fast.network import draw_network, outputs
from mfdeep.fast.train import gradient_flow, sgd
from mfdeep.model import load_instance, with_depth


class _AutogradMLP(nn.Module):
    """The straightforward implementation: frozen features, trained inner W."""

    def __init__(self, theta0, Ws, thetaL):
        super().__init__()
        self.register_buffer("theta0", theta0)
        self.register_buffer("thetaL", thetaL)
        self.W = nn.ParameterList([nn.Parameter(W) for W in Ws])
        self.N = theta0.shape[0]

    def forward(self, x):
        d = x.shape[-1]
        h = x @ self.theta0[:, :d].T + self.theta0[:, d]
        for W in self.W:
            h = torch.tanh(h) @ W / self.N
        return torch.tanh(h) @ self.thetaL / self.N


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device, dtype=torch.float32, mbytes=256, repeats=5):
    """Measured bytes per second of ``dst.copy_(src)`` (read + write counted)."""
    n = mbytes * 2**20 // torch.tensor([], dtype=dtype).element_size()
    src = torch.ones(n, dtype=dtype, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n * src.element_size() / best


def sgd_speed(N=1024, L=4, n_steps=200, device="cpu", dtype=torch.float32, seed=0,
              lazy_rank=32):
    """Steps per second: autograd baseline, ours eager, ours lazy; and agreement."""
    device = torch.device(device)
    instance = with_depth(load_instance("mlp"), L)
    model = TorchModel(instance, dtype=dtype, device=device)
    eps = 1e-3
    alpha = model.alpha(0.0)
    net = draw_network(instance, N, R=1, seed=seed, dtype=dtype, device=device)

    # Competitor: nn.Module + autograd + torch.optim.SGD with the N^2 rate.
    mlp = _AutogradMLP(net.theta0[0].clone(), [w[0, :, :, 0].clone() for w in net.W],
                       net.thetaL[0, :, 0].clone())
    opt = torch.optim.SGD(mlp.parameters(), lr=eps * alpha * N**2)
    g = torch.Generator(device=device).manual_seed(seed + 1)

    def baseline_steps(n):
        for _ in range(n):
            i = torch.multinomial(model.P, 1, generator=g)
            loss = 0.5 * ((model.Y[i] - mlp(model.X[i])) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    baseline_steps(10)
    _sync(device)
    start = time.perf_counter()
    baseline_steps(n_steps)
    _sync(device)
    t_base = time.perf_counter() - start

    results = {"autograd_steps_per_s": n_steps / t_base}
    for name, rank in (("eager", 0), ("lazy", lazy_rank)):
        state = net.clone()
        sgd(model, state, eps, 10, seed=seed + 1, lazy_rank=rank, check_every=0)
        _sync(device)
        start = time.perf_counter()
        sgd(model, state, eps, n_steps, seed=seed + 1, lazy_rank=rank, check_every=50)
        _sync(device)
        results[f"{name}_steps_per_s"] = n_steps / (time.perf_counter() - start)

    # Agreement: the same 50 steps from the same draws and samples.
    check = net.clone()
    sgd(model, check, eps, 50, seed=seed + 7, lazy_rank=lazy_rank)
    mlp2 = _AutogradMLP(net.theta0[0].clone(), [w[0, :, :, 0].clone() for w in net.W],
                        net.thetaL[0, :, 0].clone())
    opt2 = torch.optim.SGD(mlp2.parameters(), lr=eps * alpha * N**2)
    g2 = torch.Generator(device=device).manual_seed(seed + 7)
    for _ in range(50):
        i = torch.multinomial(model.P.expand(1, -1), 1, replacement=True, generator=g2)[0]
        loss = 0.5 * ((model.Y[i] - mlp2(model.X[i])) ** 2).mean()
        opt2.zero_grad(set_to_none=True)
        loss.backward()
        opt2.step()
    diff = max(float((w2.detach() - w[0, :, :, 0]).abs().max())
               for w2, w in zip(mlp2.W, check.W))
    moved = max(float((w[0, :, :, 0] - w0[0, :, :, 0]).abs().max())
                for w, w0 in zip(check.W, net.W))

    itemsize = torch.tensor([], dtype=dtype).element_size()
    bytes_per_step = 2 * (L - 1) * N * N * itemsize
    bandwidth = copy_bandwidth(device, dtype)
    best = max(results["eager_steps_per_s"], results["lazy_steps_per_s"])
    results.update({
        "device": str(device), "dtype": str(dtype), "N": N, "L": L,
        "n_steps": n_steps, "lazy_rank": lazy_rank,
        "sgd_speedup_vs_autograd": best / results["autograd_steps_per_s"],
        "eager_speedup_vs_autograd": results["eager_steps_per_s"]
        / results["autograd_steps_per_s"],
        "bytes_per_step": bytes_per_step,
        "copy_bandwidth_bytes_per_s": bandwidth,
        "bandwidth_fraction": bytes_per_step * best / bandwidth,
        "max_weight_diff_vs_autograd_after_50_steps": diff,
        "max_weight_move_after_50_steps": moved,
    })
    return results


def accuracy_vs_cost(N=256, R=4, T=1.0, orders=(3, 5, 7), reference_order=15, seed=0):
    """Limit solver on Gauss-Hermite atoms vs a width-N network, on ``default``.

    Error: max over data points of |ybar(T) - ybar_ref(T)|, the reference
    being the layered solver on ``reference_order`` atoms per coordinate.
    The network's error is its mean over R replicas of the same quantity.
    """
    instance = load_instance("default")
    ref_model = TorchModel(instance.atomic(reference_order))
    start = time.perf_counter()
    ref = solve_limit(ref_model, T, dt=0.02).ybar[-1]
    t_ref = time.perf_counter() - start
    rows = []
    for order in orders:
        model = TorchModel(instance.atomic(order))
        start = time.perf_counter()
        y = solve_limit(model, T, dt=0.05).ybar[-1]
        rows.append({"solver": f"layered, {order} atoms/coord",
                     "seconds": time.perf_counter() - start,
                     "error": float((y - ref).abs().max())})
    model = TorchModel(instance)
    net = draw_network(instance, N, R=R, seed=seed)
    start = time.perf_counter()
    final, _ = gradient_flow(model, net, T, 0.05)
    seconds = time.perf_counter() - start
    err = (outputs(model, final) - ref).abs().max(dim=1).values.mean()
    rows.append({"solver": f"network N={N} (mean of {R})", "seconds": seconds / R,
                 "error": float(err)})
    return {"reference_seconds": t_ref, "reference_order": reference_order,
            "rows": rows}


def run_all(gpu=None):
    """All benchmarks; the GPU part runs when CUDA is available (or ``gpu``)."""
    out = {"cpu": sgd_speed(device="cpu"), "accuracy_vs_cost": accuracy_vs_cost()}
    if gpu if gpu is not None else torch.cuda.is_available():
        out["gpu"] = sgd_speed(N=8192, device="cuda")
    out["sgd_speedup_vs_autograd"] = out["cpu"]["sgd_speedup_vs_autograd"]
    out["bandwidth_fraction"] = out["cpu"]["bandwidth_fraction"]
    return out

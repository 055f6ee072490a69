"""``mfdeep simulate``: the layered MV limit and finite networks, saved to disk.

Public surface: :func:`simulate` (the arrays as a dict, optionally written to
a folder); the command line over it is :mod:`mfdeep.cli.simulate`.
Notation of MODEL.md: ``W{l}`` are the weights of edge layer
``l`` (1 <= l <= L-1), ``ybar`` and ``Rbar`` the limit's output and risk,
``yhat`` and ``R_N`` a width-N network's, ``theta0`` and ``thetaL`` the frozen
features, ``eps`` the SGD step. The atom grids of the limit (``A0``, ``M{l}``,
``AL`` with weights ``q0``, ``qm{l}``, ``qL``) and its mean fields (``h1``,
``hbar{l}``, ``hL``, ``gbar{l}``, ``gL``, ``e``) are those of
:mod:`mfdeep.fast.layered`.

Files written to ``out``:

* ``limit.npz`` -- the layered MV solution (fixed-step RK4) on the atoms of the
  instance's quadrature at the recorded times: flow maps ``W{l}``, ``ybar``,
  ``Rbar``, mean fields, and how far each layer moved;
* ``finite_N{N}.npz`` -- R width-N networks drawn with ``seed`` and trained by
  population gradient flow (RK4, step ``dt``) or online SGD (step ``eps``):
  risk, outputs, weight summaries, final weights (every recorded weight with
  ``save_weights``);
* ``simulation.json`` -- every array (shape, dtype, meaning), the instance,
  settings, seeds, versions, device, dtype, wall times, summary figures and
  the run's status (``running``, ``complete``, ``diverged``, ``failed``,
  ``interrupted``).

Each file goes to a temporary file in the same folder first and is renamed
into place, so a reader never sees half a file. The command exits with 0 when
every run finished, 1 when one diverged or failed, 2 on bad input, 130 when
interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import numbers
import os
import pathlib
import platform
import time
from dataclasses import dataclass

import numpy as np

from mfdeep.atomic import atomic_write, folder_problem

LIMIT_FILE = "limit.npz"
DESCRIPTION_FILE = "simulation.json"
DTYPES = ("float32", "float64")


def finite_file(N):
    """Name of the file holding the width-``N`` networks."""
    return f"finite_N{N}.npz"


# ---------------------------------------------------------------------------
# Input checks: everything is validated before any computation starts.


def _bad(field, flag, value, why, fix):
    from mfdeep.errors import InstanceError

    return InstanceError(f"{field}={value!r} (--{flag}): {why}; {fix}")


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _as_float(field, flag, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad(field, flag, value, f"has type {type(value).__name__}",
                   "give a number")
    return float(value)


def _resolve_device(device):
    import torch

    requested = str(device)
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), requested
    try:
        dev = torch.device(requested)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise _bad("device", "device", device, "is not a device this command runs on",
                   "use cpu, cuda, cuda:K or auto")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise _bad("device", "device", device,
                       f"CUDA is not available here (torch {torch.__version__}, "
                       f"built for CUDA {torch.version.cuda})",
                       "use --device cpu, or --device auto to take a GPU when "
                       "there is one")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise _bad("device", "device", device,
                       f"this machine has {count} CUDA device(s)",
                       f"use cuda:0 .. cuda:{count - 1}")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev, requested


def _resolve_dtype(dtype):
    import torch

    names = {torch.float32: "float32", torch.float64: "float64"}
    if dtype in names:
        return dtype, names[dtype]
    if isinstance(dtype, str) and dtype in DTYPES:
        return getattr(torch, dtype), dtype
    raise _bad("dtype", "dtype", dtype, "is not a supported floating type",
               "use float64 (verification) or float32 (speed)")


def _record_steps(n_steps, n_records):
    """``n_records`` steps spread evenly over 0 .. n_steps (distinct, exact)."""
    d = n_records - 1
    return [(2 * k * n_steps + d) // (2 * d) for k in range(n_records)]


@dataclass
class _Plan:
    """Checked and resolved settings of one simulation."""

    instance: object
    spec: str
    finite: tuple
    limit: bool
    replicas: int
    batch: int
    eps: float | None
    t: float
    dt: float
    n_steps: int
    record_steps: list
    times: np.ndarray
    order: int
    seed: int
    device: object
    device_requested: str
    dtype: object
    dtype_name: str
    max_weight: float
    save_weights: bool
    out: pathlib.Path | None

    @property
    def mode(self):
        return "gradient_flow" if self.eps is None else "sgd"


def _plan(instance, finite, limit, replicas, batch, eps, t, dt, n_records, order, seed,
          device, dtype, max_weight, save_weights, out):
    from mfdeep.errors import InstanceError
    from mfdeep.model import Instance, load_instance

    # The instance, and the horizon within its [0, T].
    if isinstance(instance, Instance):
        spec = instance.name
    elif isinstance(instance, (str, os.PathLike)):
        spec = str(instance)
        try:
            instance = load_instance(spec)
        except InstanceError as exc:
            raise InstanceError(f"instance={spec!r} (--instance): {exc}") from None
    else:
        raise _bad("instance", "instance", instance,
                   f"has type {type(instance).__name__}",
                   "give a built-in name, a TOML path or an Instance")
    T = float(instance.T)
    t = T if t is None else _as_float("t", "t", t)
    if not 0 < t <= T:
        raise _bad("t", "t", t, f"the horizon must lie in (0, T] with T={T} the "
                   f"horizon of instance {instance.name!r}", f"give 0 < t <= {T:g}")

    # What to run.
    if isinstance(finite, (str, bytes)) or not hasattr(finite, "__iter__"):
        raise _bad("finite", "finite", finite, "is not a sequence of widths",
                   "give a list of integers, e.g. [16, 64]")
    finite = list(finite)
    for N in finite:
        if not _is_int(N) or N < 2:
            raise _bad("finite", "finite", finite,
                       f"width N={N!r} is not an integer >= 2 (a network needs at "
                       "least two neurons per layer to average over)",
                       "give integer widths >= 2, e.g. --finite 16 64")
    finite = tuple(sorted({int(N) for N in finite}))
    limit = bool(limit)
    if not finite and not limit:
        raise _bad("finite", "finite", finite,
                   "nothing to simulate: no network widths and no limit",
                   "give --finite N [N ...], --limit, or both")
    for name, flag, value in [("replicas", "replicas", replicas),
                              ("batch", "batch", batch)]:
        if not _is_int(value) or value < 1:
            raise _bad(name, flag, value, "must be an integer >= 1", "give 1 or more")
    if not _is_int(n_records) or n_records < 2:
        raise _bad("n_records", "n-records", n_records,
                   "needs at least the two times 0 and t", "give an integer >= 2")
    # torch generators take seeds below 2**64, and SGD uses seed + 1.
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise _bad("seed", "seed", seed, "must be an integer in [0, 2**63)",
                   "give e.g. --seed 0")
    if order is None:
        order = instance.order
    if not _is_int(order) or order < 1:
        raise _bad("order", "order", order, "must be a positive integer (quadrature "
                   "nodes per coordinate)", f"give e.g. {instance.order}, the "
                   "instance's own order")

    # Time grid: RK4 steps of dt (rounded so that t is a whole number of them),
    # or SGD steps of eps (t must be a whole number of them, eps is a model
    # parameter and is never adjusted). The limit records at the same times.
    dt = _as_float("dt", "dt", dt)
    if not 0 < dt <= t:
        raise _bad("dt", "dt", dt, f"the RK4 step must lie in (0, t] with t={t:g}",
                   f"give e.g. {min(0.025, t):g}")
    dt_steps = max(1, round(t / dt))
    if t / dt_steps > dt * (1 + 1e-9):
        dt_steps += 1  # never a longer step than asked for
    dt = t / dt_steps
    if eps is not None:
        eps = _as_float("eps", "eps", eps)
        if eps == 0:
            eps = None
        elif not 0 < eps <= t:
            raise _bad("eps", "eps", eps, f"the SGD step must lie in (0, t] with "
                       f"t={t:g} (0 or no --eps runs the gradient flow)",
                       f"give e.g. {t / max(1, round(t / 0.01)):g}")
    if eps is None:
        n_steps = dt_steps
    else:
        ratio = t / eps
        n_steps = max(1, round(ratio))
        if abs(ratio - n_steps) > 1e-9 * ratio:
            lo, hi = max(1, int(ratio)), int(ratio) + 1
            raise _bad("eps", "eps", eps, f"t={t:g} is not a whole number of SGD "
                       f"steps (t/eps = {ratio:.6g})", f"use eps = t/k for an "
                       f"integer k, e.g. {t / lo:.6g} (k={lo}) or {t / hi:.6g} "
                       f"(k={hi})")
    if n_records > n_steps + 1:
        raise _bad("n_records", "n-records", n_records, f"the grid has only "
                   f"{n_steps + 1} times (0 .. {n_steps} steps)",
                   f"give at most {n_steps + 1}, or a smaller "
                   f"{'--dt' if eps is None else '--eps'}")
    steps = _record_steps(n_steps, n_records)
    times = np.array([t if s == n_steps else min(t, t * s / n_steps) for s in steps])

    # Number type, device, divergence bound, output folder.
    dtype, dtype_name = _resolve_dtype(dtype)
    device, device_requested = _resolve_device(device)
    max_weight = _as_float("max_weight", "max-weight", max_weight)
    if not max_weight > 0:
        raise _bad("max_weight", "max-weight", max_weight,
                   "the divergence bound must be positive",
                   "give e.g. 1e3 (inf disables the bound)")
    if out is not None:
        out = pathlib.Path(out)
        problem = folder_problem(out)
        if problem:
            raise _bad("out", "out", str(out), problem,
                       "give a folder path (it is created if missing)")
    return _Plan(instance, spec, finite, limit, int(replicas), int(batch), eps, t, dt,
                 int(n_steps), steps, times, int(order), int(seed), device,
                 device_requested, dtype, dtype_name, max_weight, bool(save_weights),
                 out)


# ---------------------------------------------------------------------------
# Runs.


def _np(x):
    return x.detach().cpu().numpy()


def _check_records(what, arrays, names, times):
    """NaN/Inf in recorded outputs or risks stop the run (the weights are
    checked at every step by the solvers)."""
    from mfdeep.errors import NonFiniteError

    for name in names:
        a = arrays[name]
        bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
        if bad.any():
            k = int(np.nonzero(bad)[0][0])
            raise NonFiniteError(f"non-finite {what} {name} at t={times[k]:.6g} "
                                 f"(record {k}); lower the step size or the "
                                 "learning rate")


def _run_limit(plan):
    """Solve the layered MV system on the atomic version of the instance."""
    from mfdeep.errors import DivergenceError
    from mfdeep.fast.layered import atomic_limit, mean_fields, solve_limit
    from mfdeep.fast.model import TorchModel

    instance, L = plan.instance, plan.instance.L
    model = TorchModel(instance.atomic(plan.order), dtype=plan.dtype,
                       device=plan.device)
    lim = atomic_limit(model)
    sol = solve_limit(model, plan.t, dt=plan.dt, method="rk4",
                      record_times=plan.times.tolist(), record_states=True, lim=lim)
    assert len(sol.times) == len(plan.times)
    assert np.allclose(sol.times, plan.times, rtol=0, atol=1e-12 * max(1.0, plan.t))

    # The weight bound, at the recorded times (solve_limit checks NaN/Inf at
    # every step but takes no bound).
    for k, state in enumerate(sol.states):
        for l, W in enumerate(state, start=1):
            big = float(W.abs().max())
            if big > plan.max_weight:
                fix = ("the initial atoms already exceed it; raise --max-weight"
                       if k == 0 else "lower the learning rate or raise --max-weight")
                raise DivergenceError(
                    f"limit weights beyond the bound |w| <= {plan.max_weight:g} at "
                    f"t={plan.times[k]:.6g} (record {k}, about RK4 step "
                    f"{round(plan.times[k] / plan.dt)}), layer {l} (largest |w| = "
                    f"{big:.3g}); {fix}"
                )

    # Atoms, data, trajectories and the mean fields at every recorded time.
    a = {"times": plan.times.copy(), "ybar": _np(sol.ybar), "risk": _np(sol.risk)}
    for l in range(1, L):
        a[f"W{l}"] = np.stack([_np(s[l - 1]) for s in sol.states])
    fields = [mean_fields(model, lim, s, tk)[0] for s, tk in zip(sol.states, sol.times)]
    a["h1"] = _np(fields[0]["h1"])
    for l in range(2, L):
        a[f"hbar{l}"] = np.stack([_np(f["hbar"][l]) for f in fields])
    a["hL"] = np.stack([_np(f["hL"]) for f in fields])
    for l in range(2, L):
        a[f"gbar{l}"] = np.stack([_np(f["gbar"][l]) for f in fields])
    a["gL"] = np.stack([_np(f["gL"]) for f in fields])
    a["e"] = np.stack([_np(f["e"]) for f in fields])
    a["A0"], a["q0"] = _np(lim.A0), _np(lim.q0)
    for l in range(1, L):
        a[f"M{l}"], a[f"qm{l}"] = _np(lim.M[l - 1]), _np(lim.qm[l - 1])
    a["AL"], a["qL"] = _np(lim.AL), _np(lim.qL)
    a["X"], a["Y"], a["P"] = _np(model.X), _np(model.Y), _np(model.P)
    for l, q in enumerate(lim.key_weights(), start=1):
        W = a[f"W{l}"]
        step = np.abs(W - W[:1]).mean(axis=-1)
        a[f"moved{l}"] = (step * _np(q)).reshape(len(W), -1).sum(axis=1).astype(W.dtype)
    _check_records("limit", a, ["ybar", "risk"], plan.times)
    stats = {"rk4_steps": int(sol.stats["steps"]), "dt": plan.dt,
             "atoms": {"nu0": int(lim.A0.shape[0]),
                       "m": [int(m.shape[0]) for m in lim.M],
                       "nuL": int(lim.AL.shape[0])}}
    return a, stats


def _run_finite(plan, N):
    """Draw R width-N networks and train them by gradient flow or SGD."""
    import torch

    from mfdeep.fast.model import TorchModel
    from mfdeep.fast.network import NetworkState, draw_network
    from mfdeep.fast.train import gradient_flow, sgd

    instance, L = plan.instance, plan.instance.L
    model = TorchModel(instance, dtype=plan.dtype, device=plan.device)
    # Drawn in float64 on the CPU, then rounded: a float32 run trains the same
    # networks as a float64 run with the same seed, on every device.
    net = draw_network(instance, N, R=plan.replicas, seed=plan.seed)
    kw = {"device": plan.device, "dtype": plan.dtype}
    net = NetworkState(net.theta0.to(**kw), [w.to(**kw) for w in net.W],
                       net.thetaL.to(**kw))
    theta0, thetaL = _np(net.theta0), _np(net.thetaL)
    if plan.eps is None:
        _, rec = gradient_flow(model, net, plan.t, plan.dt, method="rk4",
                               record_steps=plan.record_steps, record_weights=True,
                               max_weight=plan.max_weight)
    else:
        _, rec = sgd(model, net, plan.eps, plan.n_steps, batch=plan.batch,
                     seed=plan.seed + 1, record_steps=plan.record_steps,
                     record_weights=True, max_weight=plan.max_weight)
    assert len(rec.times) == len(plan.times)

    # Risks, outputs, features and weight summaries at every recorded time.
    a = {"times": plan.times.copy(), "risk": _np(rec.risk), "outputs": _np(rec.outputs),
         "theta0": theta0, "thetaL": thetaL}
    for l in range(1, L):
        Ws = [w[l - 1] for w in rec.weights]  # per record: (R, N, N, p)
        a[f"moved{l}"] = _np(torch.stack([(W - Ws[0]).abs().mean(dim=(1, 2, 3))
                                          for W in Ws]))
        a[f"max_abs{l}"] = _np(torch.stack([W.abs().amax(dim=(1, 2, 3)) for W in Ws]))
        a[f"W{l}_final"] = _np(Ws[-1])
        if plan.save_weights:
            a[f"W{l}"] = np.stack([_np(W) for W in Ws])
    a["X"], a["Y"], a["P"] = _np(model.X), _np(model.Y), _np(model.P)
    _check_records(f"N={N} network", a, ["risk", "outputs"], plan.times)
    return a, {"steps": int(rec.stats["steps"]),
               "step_size": plan.dt if plan.eps is None else plan.eps}


# ---------------------------------------------------------------------------
# Description of the arrays, and the JSON record.


def _limit_meanings(L):
    m = {
        "times": "recorded times t_k (float64)",
        "ybar": "[k, r] limit output ybar(t_k, x_r) at data point r",
        "risk": "[k] limit risk Rbar(t_k) = sum_r P_r loss(y_r, ybar(t_k, x_r))",
        "h1": "[r, a] hidden-1 state sigma0(x_r, A0[a]) (constant in time)",
        "hL": "[k, r, j] hidden-L mean field hbar_L(t_k, x_r; AL[j])",
        "gL": "[k, r, j] backward signal gbar_L(t_k, x_r; AL[j])",
        "e": "[k, r] P_r dloss(y_r, ybar(t_k, x_r)), the data weights of the drift",
        "A0": "[a, c] atoms of nu0 (input features theta0)",
        "q0": "[a] probabilities of the atoms A0",
        "AL": "[j, c] atoms of nuL (output features thetaL)",
        "qL": "[j] probabilities of the atoms AL",
        "X": "[r, c] data points x_r", "Y": "[r] targets y_r",
        "P": "[r] data weights P_r (summing to 1)",
    }
    for l in range(1, L):
        m[f"M{l}"] = f"[b, c] atoms of m_{l} (initial weights of layer {l})"
        m[f"qm{l}"] = f"[b] probabilities of the atoms M{l}"
        m[f"moved{l}"] = (f"[k] E|W{l}(t_k) - W{l}(0)| over the atom law of layer "
                          f"{l}, mean over weight coordinates")
        if L == 2:
            m["W1"] = ("[k, a, b, j, c] Gamma_1(t_k; A0[a], M1[b], AL[j]): the "
                       "trained layer's flow map at atom triples")
        elif l == 1:
            m["W1"] = "[k, a, b, c] Gamma_1(t_k; A0[a], M1[b]): flow map of layer 1"
        elif l == L - 1:
            m[f"W{l}"] = (f"[k, b, j, c] Gamma_{l}(t_k; M{l}[b], AL[j]): flow map of "
                          f"layer {l}")
        else:
            m[f"W{l}"] = f"[k, b, c] Gamma_{l}(t_k; M{l}[b]): flow map of layer {l}"
    for l in range(2, L):
        m[f"hbar{l}"] = f"[k, r] hidden-{l} mean field hbar_{l}(t_k, x_r)"
        m[f"gbar{l}"] = f"[k, r] backward mean field gbar_{l}(t_k, x_r)"
    return m


def _finite_meanings(L):
    m = {
        "times": "recorded times t_k (float64)",
        "risk": "[k, R] network risk R_N(t_k) = sum_r P_r loss(y_r, yhat(t_k, x_r))",
        "outputs": "[k, R, r] network output yhat(t_k, x_r) of each replica",
        "theta0": "[R, i, c] input features theta0(i) (frozen)",
        "thetaL": "[R, j, c] output features thetaL(j) (frozen)",
        "X": "[r, c] data points x_r", "Y": "[r] targets y_r",
        "P": "[r] data weights P_r (summing to 1)",
    }
    for l in range(1, L):
        m[f"W{l}"] = f"[k, R, i, j, c] weights W_{l}(i, j) at every recorded time"
        m[f"W{l}_final"] = f"[R, i, j, c] weights W_{l}(i, j) at the final time"
        m[f"moved{l}"] = (f"[k, R] mean over edges and coordinates of "
                          f"|W_{l}(t_k) - W_{l}(0)|")
        m[f"max_abs{l}"] = f"[k, R] largest |W_{l}(t_k)| (the divergence check)"
    return m


def _describe_arrays(arrays, meanings):
    out = {}
    for name, a in arrays.items():
        assert name in meanings, f"no meaning written for array {name!r}"
        out[name] = {"shape": list(a.shape), "dtype": str(a.dtype),
                     "meaning": meanings[name]}
    return out


def _jsonable(x):
    """Floats as JSON numbers; inf and nan (not JSON) as strings."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else str(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x


def _environment(plan):
    import torch

    import mfdeep

    env = {"mfdeep": mfdeep.__version__, "torch": torch.__version__,
           "numpy": np.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "torch_cuda": torch.version.cuda}
    device = {"requested": plan.device_requested, "used": str(plan.device)}
    if plan.device.type == "cuda":
        device["name"] = torch.cuda.get_device_name(plan.device)
    return env, device


def _description(plan, arrays, stats, seconds, status, error):
    instance = plan.instance
    env, device = _environment(plan)
    files = {}
    if "limit" in arrays:
        files[LIMIT_FILE] = _describe_arrays(arrays["limit"],
                                             _limit_meanings(instance.L))
    for N, a in arrays["finite"].items():
        files[finite_file(N)] = _describe_arrays(a, _finite_meanings(instance.L))
    return _jsonable({
        "status": status,
        "error": error,
        "instance": {"name": instance.name, "spec": plan.spec,
                     "description": instance.description, "L": instance.L,
                     "T": str(instance.T), "T_float": float(instance.T),
                     "d_x": instance.d_x, "n_data": instance.data.n,
                     "is_polynomial": instance.is_polynomial,
                     "covered_by_theorem": instance.covered},
        "settings": {"limit": plan.limit, "finite": list(plan.finite),
                     "replicas": plan.replicas, "training": plan.mode,
                     "eps": plan.eps, "batch": plan.batch if plan.eps else None,
                     "t": plan.t, "dt": plan.dt, "method": "rk4",
                     "n_steps": plan.n_steps, "record_steps": plan.record_steps,
                     "times": plan.times.tolist(), "order": plan.order,
                     "max_weight": plan.max_weight,
                     "save_weights": plan.save_weights},
        "seeds": {"network_draws": plan.seed,
                  "sgd_samples": plan.seed + 1 if plan.eps else None,
                  "note": "draws on the CPU (identical on every device); SGD "
                          "samples on the run's device"},
        "dtype": plan.dtype_name,
        "device": device,
        "versions": env,
        "wall_seconds": seconds,
        "solver_stats": stats,
        "summary": _summary(arrays),
        "files": files,
    })


def _summary(arrays):
    out = {}
    lim = arrays.get("limit")
    if lim is not None:
        out["limit"] = {"risk_initial": float(lim["risk"][0]),
                        "risk_final": float(lim["risk"][-1])}
    for N, a in arrays["finite"].items():
        row = {"risk_initial_by_replica": a["risk"][0].tolist(),
               "risk_final_by_replica": a["risk"][-1].tolist(),
               "risk_final_mean": float(a["risk"][-1].mean())}
        if lim is not None:
            gap = np.abs(a["risk"][-1].astype(float) - float(lim["risk"][-1]))
            row["risk_gap_to_limit_final_mean"] = float(gap.mean())
            row["risk_gap_to_limit_final_by_replica"] = gap.tolist()
        out[f"N={N}"] = row
    return out


# ---------------------------------------------------------------------------
# Atomic writes.


def _save_npz(path, arrays):
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _save_json(path, data):
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    atomic_write(path, text)


# ---------------------------------------------------------------------------
# The public function.


def simulate(instance, finite=(), limit=True, *, replicas=1, eps=None, batch=1,
             t=None, dt=0.025, n_records=11, order=None, seed=0, device="cpu",
             dtype="float64", max_weight=1e3, save_weights=False, out=None,
             progress=None):
    """Solve the layered MV limit and/or train finite networks; save the results.

    Parameters
    ----------
    instance : str, os.PathLike or Instance
        A built-in name (``default``, ``exact``, ``mlp``, ``l2``), a TOML file
        or an :class:`~mfdeep.model.Instance`.
    finite : sequence of int
        Network widths N >= 2 (duplicates dropped, sorted).
    limit : bool
        Whether to solve the layered MV limit (MODEL.md sections 3-4).
    replicas : int
        Independent networks R per width, drawn together with ``seed``.
    eps : float, optional
        SGD step; None or 0 runs the population gradient flow instead. ``t``
        must be a whole number of SGD steps (eps is a model parameter, never
        adjusted).
    batch : int
        Fresh samples per SGD step.
    t : float, optional
        Horizon in (0, T]; default the instance's T.
    dt : float
        RK4 step of the limit and of the gradient flow, in (0, t]; shortened
        to t/k with k the fewest steps not longer than ``dt`` (the JSON records
        the step used).
    n_records : int
        Number of recorded times, spread evenly over [0, t] on the step grid
        (``dt``, or ``eps`` for SGD); the limit records at the same times.
    order : int, optional
        Quadrature nodes per coordinate for the limit's atomic laws (ignored
        for laws that are atomic already); default the instance's ``order``.
    seed : int
        Seeds the network draws (on the CPU, identical on every device); SGD
        samples use ``seed + 1`` on the run's device.
    device : str
        ``cpu``, ``cuda``, ``cuda:K`` or ``auto`` (CUDA when available).
    dtype : str or torch.dtype
        ``float64`` or ``float32``.
    max_weight : float
        Divergence bound: a weight with ``|w| > max_weight`` stops the run
        (``inf`` disables it).
    save_weights : bool
        Save every recorded network weight (``R N^2 p`` numbers per record and
        layer) instead of only the final ones.
    out : path, optional
        Folder for ``limit.npz``, ``finite_N{N}.npz`` and ``simulation.json``
        (created if missing); None writes nothing.
    progress : callable, optional
        ``progress(tasks)`` wraps the list of tasks (``"limit"`` and widths),
        e.g. with a progress bar.

    Returns
    -------
    dict
        ``"limit"``: dict of arrays (absent without ``limit``); ``"finite"``:
        dict width -> dict of arrays; ``"description"``: what
        ``simulation.json`` holds (every array's shape, dtype and meaning,
        settings, seeds, versions, wall times, summary).

    Raises
    ------
    mfdeep.errors.InstanceError
        Bad input, before any computation; the message names the field, the
        value, why it is wrong and what to use instead.
    mfdeep.errors.DivergenceError
        A NaN or Inf, or a weight beyond ``max_weight``; the message names the
        step (or time) and the layer. ``simulation.json`` then records status
        ``diverged`` and the message; files of runs that finished stay.

    Notes
    -----
    Accuracy: the limit is fixed-step RK4 on the atomic laws, so it carries the
    quadrature error of ``order`` nodes and an O(dt^4) time error; the gradient
    flow is RK4 with the same steps. Network and limit risks differ by
    O(N^-1/2) fluctuations (claim C10), SGD and gradient flow by
    O(eps + sqrt(eps)) (claim C9).

    Limitations: network weights are checked against ``max_weight`` at every
    step; the limit's weights only at the recorded times, because
    :func:`mfdeep.fast.layered.solve_limit` takes no bound (it does stop on a
    NaN or Inf at every step). Progress is reported per task, not per step.
    Weights of every record are held in memory (on the device) during a run,
    to compute the summaries. Files of an earlier run in the same folder that
    this run does not rewrite are left alone; ``simulation.json`` lists this
    run's files only.

    Source: MODEL.md sections 1, 3 and 4; proofs_notes/03_layered.md.
    """
    plan = _plan(instance, finite, limit, replicas, batch, eps, t, dt, n_records,
                 order, seed, device, dtype, max_weight, save_weights, out)
    if plan.out is not None:
        plan.out.mkdir(parents=True, exist_ok=True)
    tasks = (["limit"] if plan.limit else []) + list(plan.finite)
    arrays, stats, seconds = {"finite": {}}, {}, {}
    start = time.perf_counter()

    def record(status, error=None):
        seconds["total"] = time.perf_counter() - start
        description = _description(plan, arrays, stats, seconds, status, error)
        if plan.out is not None:
            _save_json(plan.out / DESCRIPTION_FILE, description)
        return description

    # One task at a time; each file is written as soon as its run is done.
    try:
        for task in (progress(tasks) if progress else tasks):
            begin = time.perf_counter()
            if task == "limit":
                a, stats["limit"] = _run_limit(plan)
                arrays["limit"], name = a, LIMIT_FILE
            else:
                a, stats[f"N={task}"] = _run_finite(plan, task)
                arrays["finite"][task], name = a, finite_file(task)
            seconds[name.removesuffix(".npz")] = time.perf_counter() - begin
            if plan.out is not None:
                _save_npz(plan.out / name, a)
                record("running")
    except BaseException as exc:
        from mfdeep.errors import DivergenceError

        status = ("diverged" if isinstance(exc, DivergenceError)
                  else "interrupted" if isinstance(exc, KeyboardInterrupt)
                  else "failed")
        record(status, f"{type(exc).__name__}: {exc}")
        raise
    arrays["description"] = record("complete")
    return arrays

"""Parameter sweeps: ``mfdeep sweep --grid FILE --out DIR [--engine local|ray]``.

A grid (a TOML file, schema below) names instances, depths ``L``, widths
``N``, SGD steps ``eps`` and seeds; every combination is one *task*. A task
draws one network (R = 1) of width N from the instance's laws with ``seed``,
integrates its gradient flow together with the ideal particles and the
layered limit (:func:`mfdeep.fast.layered.ideal_particles`, RK4 with step
``dt``) to the horizon ``t``, and, if ``eps > 0``, runs online SGD with step
``eps`` for ``t / eps`` steps from the same draws. It records, per trained
layer l, the coupling gap E|W_gf - Wbar| (network against ideal particles),
E|W_sgd - Wbar| and E|W_sgd - W_gf|, the movement E|W(t) - W(0)|, and the
risks R_N, Rbar, |R_N - Rbar|, the output gap max |yhat - ybar| and the SGD
risk. At the end come a summary table and the rate fits: the log-log slope
in N of the coupling gap and of |R_N - Rbar| (claims C8, C10: about -1/2)
and in eps of E|W_sgd - W_gf| and |R_sgd - R_gf| (claims C9, C10: about 1/2).

Letters: ``W_gf`` the network's weights under the gradient flow, ``Wbar``
the ideal particles' (the limit's) weights, ``W_sgd`` the weights after SGD,
``eps`` the SGD step (time t = k eps), ``t`` the horizon, ``dt`` the RK4
step, ``order`` the quadrature nodes per coordinate of the atomic limit.

Grid file::

    description = "optional text"
    [grid]
    instance = ["default", "my.toml"]  # built-in names or TOML files (paths
                                       # relative to the grid file); required
    L = [2, 3]          # optional; default: each instance's own depth
    N = [32, 64, 128]   # required; integers >= 2
    eps = [0, 0.02]     # optional, default [0]; numbers >= 0, 0 = flow only;
                        # each eps > 0 must divide t (t / eps steps of SGD)
    seed = [0, 1, 2]    # optional, default [0]; integers >= 0 ...
    # seeds = 3         # ... or a count: seeds = 3 means seed = [0, 1, 2]
    [settings]
    t = 0.5             # required; horizon, 0 < t <= every instance's T
    dt = 0.05           # RK4 step, 0 < dt <= t (rounded to t / round(t / dt))
    order = 5           # quadrature nodes per coordinate for the limit
                        # (default: each instance's own ``order``)
    max_weight = 1000.0 # a weight beyond it is a divergence (task failed)
    dtype = "float64"   # or "float32"
    device = "cpu"      # or "cuda"
    gpu_fraction = 0.25 # GPUs per Ray task; 0 on cpu, in (0, 1] on cuda
                        # (default 0.25 there)

Every key is checked; an unknown key, a wrong type or a value out of range
is an error naming the field, the value received and the fix. Strings from
the file are names looked up in registries or paths; nothing is evaluated.

The output folder ``DIR``:

* ``grid.json`` -- the resolved plan: settings, instance sources (TOML text
  and its SHA-256) and every task. A run refuses a ``DIR`` that holds a
  different plan.
* ``tasks/<id>.json`` -- one file per finished task (status ``ok`` with its
  results, or ``failed`` with the reason), written atomically (temporary
  file, fsync, rename), so a file under that name is always complete. A file
  that does not parse, or whose task does not match the plan, counts as not
  done.
* ``summary.json``, ``summary.csv`` -- one row per task, and the rate fits;
  written when every task has a result.

Reliability: a run killed at any point (Ctrl-C, SIGTERM, SIGKILL, a dead
worker, a machine restart) loses at most the tasks that were running;
``--resume`` runs the same command again, skipping finished tasks (ok or
failed; ``--retry-failed`` reruns the failed ones). A lock on ``DIR`` keeps
two sweeps from writing into it at once. A diverging task (NaN, Inf, or a
weight beyond ``max_weight``) is marked failed with the reason; the other
tasks go on.

Engines: ``local`` (default) runs the tasks in a process pool on this
machine (``--workers``, default the CPU count); ``ray`` runs them as Ray
tasks, on a local Ray cluster started for the sweep or on the cluster at
``--ray-address`` (mfdeep must be installed on its nodes), with
``gpu_fraction`` GPUs per task. Every task runs on one thread
(``torch.set_num_threads(1)``) and takes all its seeds from its own
specification, so both engines give bit-for-bit the same numbers on the
same hardware. The SGD seed is derived from the task id (SHA-256).

Exit codes of ``mfdeep sweep``: 0 when every task of the grid is ok, 1 when
some failed (or a worker process died: rerun with ``--resume``), 2 on bad
input (grid, arguments, an output folder holding another plan or finished
results without ``--resume``), 130 when interrupted (``--resume`` continues).

Notes
-----
Tasks that differ only in ``eps`` repeat the same coupling run (same draws,
same gradient flow); the rate fit in N counts each (N, seed) once. The local
engine puts every CUDA task on the current device; use Ray for several GPUs.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import hashlib
import io
import json
import math
import os
import pathlib
import re
import sys
import time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mfdeep.atomic import atomic_write, folder_problem
from mfdeep.errors import InstanceError, MfdeepError

FORMAT = 1

_TOP_KEYS = {"description", "grid", "settings"}
_GRID_KEYS = {"instance", "L", "N", "eps", "seed", "seeds"}
_SETTINGS_KEYS = {"t", "dt", "order", "max_weight", "dtype", "device", "gpu_fraction"}
_DTYPES = ("float64", "float32")
_DEVICES = ("cpu", "cuda")
_DEFAULT_DT = 0.05
_DEFAULT_MAX_WEIGHT = 1000.0
_DEFAULT_CUDA_FRACTION = 0.25
# Relative tolerance for "eps divides t": t / eps must be an integer up to
# round-off of the decimal inputs (0.3 / 0.1 = 2.9999999999999996).
_DIVIDES_RTOL = 1e-9

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class GridError(MfdeepError, ValueError):
    """A sweep grid is malformed; the message names the field, value and fix."""


class SweepDirError(MfdeepError, ValueError):
    """The output folder holds another plan, finished results, or a lock."""


class WorkerDied(MfdeepError, RuntimeError):
    """A worker process of the local engine died (killed, out of memory)."""


class EngineError(MfdeepError, RuntimeError):
    """The requested engine cannot run here (Ray missing)."""


# ---------------------------------------------------------------------------
# The grid: parsing and validation.


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _no_unknown(table, allowed, where):
    if not isinstance(table, dict):
        raise GridError(
            f"{where}={table!r} has type {type(table).__name__}; it must be a "
            f"table ([{where}] with keys among {sorted(allowed)})"
        )
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise GridError(
            f"unknown key(s) {unknown} in [{where}]; allowed: {sorted(allowed)}"
        )


def _values(table, key, example, default=None):
    """The list ``grid.<key>``: present (unless a default is given), non-empty."""
    if key not in table:
        if default is None:
            raise GridError(f"missing key grid.{key}; give a list, e.g. "
                            f"{key} = {example}")
        return default
    v = table[key]
    if not isinstance(v, list):
        raise GridError(
            f"grid.{key}={v!r} has type {type(v).__name__}; give a list, e.g. "
            f"{key} = {example}"
        )
    if not v:
        raise GridError(f"grid.{key} is an empty list; give at least one value, "
                        f"e.g. {key} = {example}")
    return v


def _no_duplicates(values, key):
    seen = {}
    for k, v in enumerate(values):
        if v in seen:
            raise GridError(
                f"grid.{key}[{k}]={v!r} repeats grid.{key}[{seen[v]}]; a grid "
                "point would run twice; list each value once"
            )
        seen[v] = k


def _ints(table, key, low, example, default=None):
    values = _values(table, key, example, default)
    for k, v in enumerate(values):
        if not _is_int(v):
            raise GridError(
                f"grid.{key}[{k}]={v!r} has type {type(v).__name__}; give an "
                f"integer >= {low}, e.g. {key} = {example}"
            )
        if v < low:
            raise GridError(f"grid.{key}[{k}]={v} is below {low}; give integers >= "
                            f"{low}, e.g. {key} = {example}")
    _no_duplicates(values, key)
    return list(values)


def _instance_source(entry, k, base):
    """``(label, origin, toml_text)`` of one entry of ``grid.instance``."""
    from mfdeep.model.toml_io import BUILTIN_DIR, builtin_names

    where = f"grid.instance[{k}]"
    if not isinstance(entry, str):
        raise GridError(f"{where}={entry!r} has type {type(entry).__name__}; give a "
                        f"built-in name ({', '.join(builtin_names())}) or a TOML path")
    if entry in builtin_names():
        return entry, f"built-in {entry}", (BUILTIN_DIR / f"{entry}.toml").read_text()
    path = pathlib.Path(entry)
    path = path if path.is_absolute() else base / path
    if path.suffix != ".toml":
        raise GridError(
            f"{where}={entry!r} is neither a built-in instance "
            f"({', '.join(builtin_names())}) nor a .toml file; use one of those"
        )
    if not path.is_file():
        raise GridError(f"{where}={entry!r}: no file {str(path)!r} (paths are "
                        "relative to the grid file); give an existing TOML file")
    label = re.sub(r"[^A-Za-z0-9_.+-]", "_", path.stem)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"{where}={entry!r}: cannot read {str(path)!r} as UTF-8 text "
                        f"({exc}); give a TOML file") from None
    return label, str(path.resolve()), text


@functools.lru_cache(maxsize=64)
def _parse_instance(text, L=None):
    """Build an instance from its TOML text; ``L`` changes the depth (cached:
    parsing compiles the maps, about a second; instances are not mutated)."""
    from mfdeep.model import instance_from_dict, with_depth

    instance = instance_from_dict(tomllib.loads(text))
    return instance if L is None or L == instance.L else with_depth(instance, L)


def _number(settings, key, default, *, low, high=None, low_open=True, fix):
    v = settings.get(key, default)
    if not _is_number(v):
        raise GridError(f"settings.{key}={v!r} has type {type(v).__name__}; {fix}")
    v = float(v)
    too_low = v <= low if low_open else v < low
    if not math.isfinite(v) or too_low or (high is not None and v > high):
        raise GridError(f"settings.{key}={v!r} is out of range; {fix}")
    return v


def grid_from_dict(doc, base=".", check_cuda=True):
    """Validate a parsed grid (a dict) into a plan: a JSON-ready dict.

    Parameters
    ----------
    doc : dict
        The parsed TOML document.
    base : path-like
        Folder that relative instance paths start from (the grid file's).
    check_cuda : bool
        Check here that ``device = "cuda"`` has a CUDA device (False when the
        tasks run on a Ray cluster, which is checked once connected).

    Returns
    -------
    dict
        ``format``, ``description``, ``instances`` (label -> origin, TOML
        text, its SHA-256, depth, horizon, order), ``settings`` and ``tasks``
        (each a dict: ``id``, ``instance``, ``L``, ``N``, ``eps``, ``seed``,
        the settings, the number and seed of SGD steps).

    Raises
    ------
    GridError
        Naming the field, the value received and the fix.
    """
    base = pathlib.Path(base)
    _no_unknown(doc, _TOP_KEYS, "top level")
    if "grid" not in doc:
        raise GridError("missing table [grid]; give at least grid.instance and grid.N")
    grid = doc["grid"]
    _no_unknown(grid, _GRID_KEYS, "grid")
    settings = doc.get("settings", {})
    _no_unknown(settings, _SETTINGS_KEYS, "settings")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise GridError(f"description={description!r} has type "
                        f"{type(description).__name__}; give a string")

    # Instances: each loaded and validated now, so a bad one fails the grid.
    entries = _values(grid, "instance", '["default"]')
    instances = {}
    for k, entry in enumerate(entries):
        label, origin, text = _instance_source(entry, k, base)
        if label in instances:
            raise GridError(
                f"grid.instance[{k}]={entry!r} has the label {label!r} of an earlier "
                "entry; list each instance once and give files distinct names"
            )
        try:
            inst = _parse_instance(text)
        except tomllib.TOMLDecodeError as exc:
            raise GridError(f"grid.instance[{k}]={entry!r}: malformed TOML ({exc}); "
                            "fix the instance file's syntax") from None
        except InstanceError as exc:
            raise GridError(f"grid.instance[{k}]={entry!r}: {exc}") from None
        instances[label] = {"origin": origin, "toml": text,
                            "sha256": hashlib.sha256(text.encode()).hexdigest(),
                            "L": inst.L, "T": float(inst.T), "order": inst.order}

    # The axes of the grid.
    Ls = _ints(grid, "L", 2, "[2, 3]", default=[]) or None
    Ns = _ints(grid, "N", 2, "[32, 64, 128]")
    if "seed" in grid and "seeds" in grid:
        raise GridError("grid has both seed and seeds; give seed = [0, 1, 2] or "
                        "seeds = 3, not both")
    if "seeds" in grid:
        count = grid["seeds"]
        if not _is_int(count) or count < 1:
            raise GridError(f"grid.seeds={count!r} must be a positive integer (seeds "
                            "= 3 means seed = [0, 1, 2]); or give a list as seed")
        seeds = list(range(count))
    else:
        seeds = _ints(grid, "seed", 0, "[0, 1, 2]", default=[0])
    for k, s in enumerate(seeds):
        if s >= 2**63:
            raise GridError(f"grid.seed[{k}]={s} is beyond 2**63 - 1; use smaller "
                            "seeds")
    epss = _values(grid, "eps", "[0, 0.02, 0.01]", default=[0.0])
    for k, e in enumerate(epss):
        if not _is_number(e) or not math.isfinite(e) or e < 0:
            raise GridError(f"grid.eps[{k}]={e!r} must be a number >= 0 (0: gradient "
                            "flow only), e.g. eps = [0, 0.02, 0.01]")
    epss = [float(e) for e in epss]
    _no_duplicates(epss, "eps")

    # Settings.
    T_min = min(v["T"] for v in instances.values())
    if "t" not in settings:
        raise GridError(f"missing key settings.t; give the horizon, 0 < t <= {T_min:g} "
                        "(the smallest instance horizon T)")
    t = _number(settings, "t", None, low=0.0,
                fix=f"give the horizon as a number, 0 < t <= {T_min:g}")
    for label, v in instances.items():
        if t > v["T"]:
            raise GridError(f"settings.t={t!r} is beyond the horizon T={v['T']:g} of "
                            f"instance {label!r}; use t <= {v['T']:g}")
    dt = _number(settings, "dt", _DEFAULT_DT, low=0.0, high=t,
                 fix=f"give the RK4 step as a number, 0 < dt <= t={t!r}")
    order = settings.get("order")
    if order is not None and (not _is_int(order) or order < 1):
        raise GridError(f"settings.order={order!r} must be an integer >= 1 (quadrature "
                        "nodes per coordinate), e.g. order = 5; omit it for each "
                        "instance's own order")
    max_weight = _number(settings, "max_weight", _DEFAULT_MAX_WEIGHT, low=0.0,
                         fix="give a positive bound on |w|, e.g. max_weight = 1000.0")
    dtype = settings.get("dtype", "float64")
    if dtype not in _DTYPES:
        raise GridError(f"settings.dtype={dtype!r} is not supported; use one of "
                        f"{list(_DTYPES)}")
    device = settings.get("device", "cpu")
    if device not in _DEVICES:
        raise GridError(f"settings.device={device!r} is not supported; use one of "
                        f"{list(_DEVICES)}")
    if device == "cpu":
        fraction = _number(settings, "gpu_fraction", 0.0, low=0.0, high=0.0,
                           low_open=False, fix='with device = "cpu" the tasks use no '
                           'GPU; drop gpu_fraction or set device = "cuda"')
    else:
        fraction = _number(settings, "gpu_fraction", _DEFAULT_CUDA_FRACTION, low=0.0,
                           high=1.0, fix="give the GPU share of one task, "
                           "0 < gpu_fraction <= 1, e.g. 0.25")
        if check_cuda:
            import torch

            if not torch.cuda.is_available():
                raise GridError('settings.device="cuda" but this machine has no '
                                'CUDA device; use device = "cpu", or the ray engine '
                                "with --ray-address of a cluster with GPUs")

    # Each eps > 0 must give a whole number of SGD steps up to t.
    for k, e in enumerate(epss):
        if e > 0:
            n = round(t / e)
            if n < 1 or abs(n * e - t) > _DIVIDES_RTOL * t:
                near = [t / m for m in (max(1, math.floor(t / e)), math.ceil(t / e))]
                raise GridError(
                    f"grid.eps[{k}]={e!r} does not divide t={t!r} (t / eps = "
                    f"{t / e:.4g} steps); use eps = t / n for a whole n, e.g. "
                    f"{near[0]:.6g} or {near[1]:.6g}"
                )

    # Depths: each checked on every instance (make_instance validates).
    for label, v in instances.items():
        for k, L in enumerate(Ls or []):
            try:
                _parse_instance(v["toml"], L)
            except InstanceError as exc:
                raise GridError(
                    f"grid.L[{k}]={L} on instance {label!r}: {exc}") from None

    settings_out = {"t": t, "dt": dt, "dt_effective": t / max(1, round(t / dt)),
                    "order": order, "max_weight": max_weight, "dtype": dtype,
                    "device": device, "gpu_fraction": fraction}
    tasks = []
    for label, v in instances.items():
        for L in Ls or [v["L"]]:
            for N in Ns:
                for e in epss:
                    for s in seeds:
                        tasks.append(_task(label, v, L, N, e, s, settings_out))
    return {"format": FORMAT, "description": description, "instances": instances,
            "grid": {"instance": list(instances), "L": Ls, "N": Ns, "eps": epss,
                     "seed": seeds},
            "settings": settings_out, "tasks": tasks}


def _task(label, inst, L, N, eps, seed, settings):
    """One task: a grid point with the settings it runs under."""
    tid = f"{label}-L{L}-N{N}-eps{eps!r}-s{seed}"
    digest = hashlib.sha256(f"sgd|{tid}|{inst['sha256']}".encode()).digest()
    return {"id": tid, "instance": label, "instance_sha256": inst["sha256"], "L": L,
            "N": N, "eps": eps, "seed": seed, "t": settings["t"], "dt": settings["dt"],
            "order": inst["order"] if settings["order"] is None else settings["order"],
            "max_weight": settings["max_weight"], "dtype": settings["dtype"],
            "device": settings["device"],
            "sgd_steps": round(settings["t"] / eps) if eps > 0 else 0,
            "sgd_seed": int.from_bytes(digest[:8], "big") >> 1}


def load_grid(path, check_cuda=True):
    """Read and validate a grid TOML file into a plan (see :func:`grid_from_dict`).

    Raises
    ------
    GridError
        For an unreadable file, malformed TOML or any invalid field; the
        message starts with the file name.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError(f"cannot read the grid file {str(path)!r} ({exc.strerror}); "
                        "give an existing TOML file") from None
    except UnicodeDecodeError as exc:
        raise GridError(f"the grid file {str(path)!r} is not UTF-8 text ({exc}); "
                        "give a TOML file") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{path}: malformed TOML ({exc}); fix the syntax") from None
    try:
        return grid_from_dict(doc, base=path.parent, check_cuda=check_cuda)
    except GridError as exc:
        raise GridError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------
# One task (runs in a worker process).

_RESULT_KEYS = ("gap", "moved", "risk", "risk_limit", "risk_gap", "output_gap")
_SGD_KEYS = ("sgd_vs_limit", "sgd_vs_gf", "risk_sgd", "risk_sgd_vs_gf")


def _compute(task, toml_text):
    import torch

    from mfdeep.errors import NonFiniteError
    from mfdeep.fast.layered import ideal_particles
    from mfdeep.fast.model import TorchModel
    from mfdeep.fast.network import draw_network
    from mfdeep.fast.train import sgd

    # One thread per task: results independent of the engine and the machine load.
    torch.set_num_threads(1)
    dtype = {"float64": torch.float64, "float32": torch.float32}[task["dtype"]]
    instance = _parse_instance(toml_text, task["L"])
    atomic = instance.atomic(task["order"])

    # Gradient flow, ideal particles and the limit, from one draw.
    model = TorchModel(atomic, dtype=dtype, device=task["device"])
    net = draw_network(instance, task["N"], R=1, seed=task["seed"], dtype=dtype,
                       device=task["device"])
    run = ideal_particles(model, net, task["t"], dt=task["dt"],
                          max_weight=task["max_weight"])
    W_gf, Wbar = run.final["network"], run.final["particles"]
    out = {"gap": [float(g[-1, 0]) for g in run.gap],
           "moved": [float(m[-1, 0]) for m in run.moved],
           "risk": float(run.risk[-1, 0]), "risk_limit": float(run.risk_limit[-1]),
           "risk_gap": float(run.risk_gap[-1, 0]),
           "output_gap": float(run.output_gap[-1, 0])}

    # SGD from the same draws (the maps and data of the atomic model are the
    # instance's; only the laws differ, and SGD does not use them).
    if task["eps"] > 0:
        state, rec = sgd(model, net.clone(), task["eps"], task["sgd_steps"],
                         seed=task["sgd_seed"], max_weight=task["max_weight"])
        out["sgd_vs_limit"] = [float((a - b).abs().mean())
                               for a, b in zip(state.W, Wbar)]
        out["sgd_vs_gf"] = [float((a - b).abs().mean())
                            for a, b in zip(state.W, W_gf)]
        out["risk_sgd"] = float(rec.risk[-1, 0])
        out["risk_sgd_vs_gf"] = abs(out["risk_sgd"] - out["risk"])
    bad = [k for k, v in out.items() if not all(map(math.isfinite, _flat(v)))]
    if bad:
        raise NonFiniteError(f"non-finite result(s) {bad} at t={task['t']}; lower dt "
                             "or eps")
    return out


def _flat(v):
    return v if isinstance(v, list) else [v]


def run_task(payload):
    """Run one task; never raises for a failing run.

    Parameters
    ----------
    payload : dict
        ``{"task": <a task of the plan>, "toml": <the instance's TOML text>}``
        (self-contained, so it runs on any machine with mfdeep installed).

    Returns
    -------
    dict
        The task record: ``id``, ``task``, ``status`` ("ok" with ``results``,
        or "failed" with ``error``, the exception's type and message) and
        ``seconds`` (wall time).
    """
    # Imports before the clock starts: a task's time is its own work.
    import torch  # noqa: F401

    import mfdeep.fast.layered  # noqa: F401
    import mfdeep.fast.train  # noqa: F401

    task = payload["task"]
    start = time.perf_counter()
    try:
        results, error = _compute(task, payload["toml"]), None
    except Exception as exc:  # a failed task must not stop the sweep
        results, error = None, f"{type(exc).__name__}: {exc}"
    record = {"format": FORMAT, "id": task["id"], "task": task,
              "status": "ok" if error is None else "failed",
              "seconds": time.perf_counter() - start}
    record.update({"results": results} if error is None else {"error": error})
    return record


# ---------------------------------------------------------------------------
# The output folder: plan, locks, task files.


def _plan_identity(plan):
    """What must agree for two plans to share an output folder."""
    return {"format": plan.get("format"), "settings": plan.get("settings"),
            "instances": {k: v.get("sha256")
                          for k, v in plan.get("instances", {}).items()},
            "tasks": {t.get("id"): t for t in plan.get("tasks") or []
                      if isinstance(t, dict)}}


def _plan_difference(old, new):
    a, b = _plan_identity(old), _plan_identity(new)
    diffs = []
    if a["format"] != b["format"]:
        diffs.append(f"format {a['format']!r} -> {b['format']!r}")
    for key in sorted(set(a["settings"] or {}) | set(b["settings"] or {})):
        u, v = (a["settings"] or {}).get(key), (b["settings"] or {}).get(key)
        if u != v:
            diffs.append(f"settings.{key} {u!r} -> {v!r}")
    for key in sorted(set(a["instances"]) | set(b["instances"])):
        if a["instances"].get(key) != b["instances"].get(key):
            diffs.append(f"instance {key!r} " + ("added" if key not in a["instances"]
                                                 else "removed" if key not in
                                                 b["instances"] else "changed"))
    ids_a, ids_b = set(a["tasks"]), set(b["tasks"])
    if ids_b - ids_a:
        diffs.append(f"{len(ids_b - ids_a)} task(s) added")
    if ids_a - ids_b:
        diffs.append(f"{len(ids_a - ids_b)} task(s) removed")
    return "; ".join(diffs[:6]) or "task settings differ"


def read_task_file(path, task):
    """The record in ``path`` if it is a complete result of ``task``, else None.

    A file that does not parse, is not a record of this format, belongs to a
    different task (spec or settings), or lacks its results counts as not
    done.
    """
    try:
        record = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    if record.get("id") != task["id"] or record.get("task") != task:
        return None
    if record.get("status") == "failed":
        return record if isinstance(record.get("error"), str) else None
    if record.get("status") != "ok":
        return None
    results = record.get("results")
    keys = _RESULT_KEYS + (_SGD_KEYS if task["eps"] > 0 else ())
    if not isinstance(results, dict) or any(k not in results for k in keys):
        return None
    L1 = task["L"] - 1
    layered = [k for k in keys if isinstance(results[k], list)]
    if any(len(results[k]) != L1 for k in layered):
        return None
    values = [x for k in keys for x in _flat(results[k])]
    if not all(_is_number(x) and math.isfinite(x) for x in values):
        return None
    return record


class _OutputDir:
    """The sweep's output folder, locked for the life of the object."""

    def __init__(self, out):
        self.root = pathlib.Path(out)
        self.tasks = self.root / "tasks"
        self._lock = None

    def __enter__(self):
        self.tasks.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "a+")
        try:
            import fcntl
        except ImportError:  # pragma: no cover (no POSIX locks on Windows)
            return self
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise SweepDirError(
                    f"cannot lock {str(self.root / '.lock')!r} ({exc.strerror}); put "
                    "--out on a file system with POSIX locks"
                ) from None
            raise SweepDirError(
                f"another sweep is writing into {str(self.root)!r} (it holds "
                f"{str(self.root / '.lock')!r}); wait for it to finish or use "
                "another --out"
            ) from None
        return self

    def __exit__(self, *exc):
        self._lock.close()

    def task_path(self, task):
        return self.tasks / f"{task['id']}.json"

    def prepare(self, plan, resume, retry_failed):
        """Check the folder against ``plan``; return the records to keep."""
        grid_path = self.root / "grid.json"
        if grid_path.exists():
            try:
                old = json.loads(grid_path.read_text())
            except (OSError, UnicodeDecodeError, ValueError):
                old = None
            if not isinstance(old, dict):
                raise SweepDirError(f"{str(grid_path)!r} is not a sweep plan this "
                                    "version can read; use another --out")
            if _plan_identity(old) != _plan_identity(plan):
                raise SweepDirError(
                    f"{str(self.root)!r} holds a different sweep plan "
                    f"({_plan_difference(old, plan)}); use another --out, or the "
                    "grid that made it"
                )
        elif any(self.tasks.glob("*.json")):
            raise SweepDirError(f"{str(self.root)!r} holds task files but no "
                                "grid.json; use another --out")

        # Leftovers of a killed run: temporary files are never results.
        for junk in [*self.tasks.glob(".*.tmp"), *self.root.glob(".*.tmp")]:
            junk.unlink(missing_ok=True)

        # Finished tasks: complete files of this plan's tasks only.
        done = {}
        for task in plan["tasks"]:
            record = read_task_file(self.task_path(task), task)
            if record is not None:
                done[task["id"]] = record
        if done and not resume:
            raise SweepDirError(
                f"{str(self.root)!r} already holds {len(done)} finished task(s) of "
                "this grid; add --resume to continue it (finished tasks are "
                "skipped), or use another --out"
            )
        if retry_failed:
            done = {k: r for k, r in done.items() if r["status"] == "ok"}
        if not grid_path.exists():
            atomic_write(grid_path, json.dumps(plan, indent=1) + "\n")
        return done

    def write(self, record):
        atomic_write(self.task_path(record["task"]),
                      json.dumps(record, indent=1, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------
# Engines: each yields task records as they finish.


def _die_with_parent(parent):
    """Make this worker get SIGTERM when ``parent`` dies, SIGKILL included
    (Linux ``PR_SET_PDEATHSIG``); elsewhere a no-op."""
    import signal

    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_local_worker(pid_queue, parent):
    import signal

    # A worker must not outlive a killed sweep: it would hold memory and go
    # on computing beside the resumed run.
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group; the parent alone handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pid_queue.put(os.getpid())


def _local_engine(payloads, workers):
    import concurrent.futures as cf
    import multiprocessing
    import signal
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    pids = ctx.SimpleQueue()
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                  initializer=_init_local_worker,
                                  initargs=(pids, os.getpid()))
    finished = False
    try:
        futures = {pool.submit(run_task, p): p["task"] for p in payloads}
        for future in cf.as_completed(futures):
            try:
                record = future.result()
            except BrokenProcessPool:
                raise WorkerDied("a worker process died (killed, or out of memory) "
                                 "and the process pool stopped") from None
            yield record
        finished = True
    finally:
        if not finished:
            # Stop the running tasks now: their results are not written, so
            # killing a worker loses nothing that --resume cannot redo.
            while not pids.empty():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids.get(), signal.SIGTERM)
        pool.shutdown(wait=True, cancel_futures=not finished)


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineError(f"the ray engine needs Ray ({exc}); install it with "
                          "pip install 'mfdeep[ray]', or use --engine local") from None
    return ray


def _ray_engine(payloads, workers, address, gpu_fraction, needs_gpu):
    import logging

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        kwargs = {"num_cpus": workers} if address is None else {}
        ray.init(address=address, include_dashboard=False,
                 logging_level=logging.WARNING, **kwargs)
    pending = {}
    try:
        if needs_gpu and not ray.cluster_resources().get("GPU", 0) > 0:
            raise GridError('settings.device="cuda" but the Ray cluster has no GPU; '
                            'use device = "cpu" or a cluster with GPUs')
        remote = ray.remote(num_cpus=1, num_gpus=gpu_fraction)(run_task)
        pending = {remote.remote(p): p["task"] for p in payloads}
        lost = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    # run_task catches every error of a run; this is the
                    # worker or the node dying under it. Nothing is written
                    # for the task, so --resume runs it again, as with the
                    # local engine; the other tasks go on.
                    lost.append(f"{task['id']}: {type(exc).__name__}: {exc}")
                    continue
                yield record
        if lost:
            raise WorkerDied(f"{len(lost)} task(s) lost their Ray worker (first: "
                             f"{lost[0][:300]}); rerun with --resume")
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------
# Running a plan.


def run_sweep(plan, out, engine="local", workers=None, resume=False,
              retry_failed=False, ray_address=None, on_record=None, on_start=None):
    """Run the tasks of ``plan`` not yet finished in ``out``; write their files.

    Parameters
    ----------
    plan : dict
        From :func:`load_grid` or :func:`grid_from_dict`.
    out : path-like
        Output folder (created if missing).
    engine : {"local", "ray"}
    workers : int, optional
        Worker processes of the local engine, or CPUs of a Ray cluster started
        here (default: the CPU count).
    resume, retry_failed : bool
        Skip finished tasks (with ``retry_failed``, only the ok ones); without
        ``resume`` a folder holding finished tasks of this plan is refused.
    ray_address : str, optional
        Address of a running Ray cluster; default: start a local one.
    on_record : callable, optional
        Called with each new record as it is written.
    on_start : callable, optional
        Called with ``(kept, to_run)`` (a dict of kept records, a list of
        tasks) before any task runs.

    Returns
    -------
    dict
        ``records`` (id -> record, in plan order, every task with one),
        ``kept`` (ids skipped as finished) and ``ran`` (ids run now).

    Raises
    ------
    SweepDirError
        For a folder holding another plan, finished results without
        ``resume``, or another sweep's lock.
    EngineError
        When the ray engine is asked for and Ray is missing.
    WorkerDied
        When a worker process (local) or a Ray worker dies; finished tasks
        are written, the lost ones run again with ``resume``.
    KeyboardInterrupt
        Passed on after stopping the workers; finished tasks are written.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine={engine!r}; use 'local' or 'ray'")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers={workers!r}; give a positive integer")
    problem = folder_problem(out)
    if problem:
        raise SweepDirError(f"--out {problem}; give a folder path (it is created "
                            "if missing)")
    with _OutputDir(out) as folder:
        kept = folder.prepare(plan, resume or retry_failed, retry_failed)
        todo = [t for t in plan["tasks"] if t["id"] not in kept]
        if on_start is not None:
            on_start(kept, todo)
        if todo:
            for name in ("summary.json", "summary.csv"):
                (folder.root / name).unlink(missing_ok=True)
        payloads = [{"task": t, "toml": plan["instances"][t["instance"]]["toml"]}
                    for t in todo]
        records = dict(kept)
        if payloads and engine == "local":
            stream = _local_engine(payloads, min(workers, len(payloads)))
        elif payloads:
            stream = _ray_engine(payloads, workers, ray_address,
                                 plan["settings"]["gpu_fraction"],
                                 plan["settings"]["device"] == "cuda")
        else:
            stream = (record for record in ())
        with contextlib.closing(stream):
            for record in stream:
                folder.write(record)
                records[record["id"]] = record
                if on_record is not None:
                    on_record(record)
        ordered = {t["id"]: records[t["id"]] for t in plan["tasks"]}
        summary = summarise(plan, ordered)
        atomic_write(folder.root / "summary.csv", summary_csv(plan, ordered))
        atomic_write(folder.root / "summary.json",
                      json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return {"records": ordered, "kept": list(kept), "ran": [t["id"] for t in todo],
            "summary": summary}


# ---------------------------------------------------------------------------
# Summary and rate fits.


def _fit_loglog(x, y):
    """Least-squares slope of log y on log x, with its standard error (or None)."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    n = len(lx)
    mx, my = sum(lx) / n, sum(ly) / n
    sxx = sum((u - mx) ** 2 for u in lx)
    slope = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sxx
    if n < 3:
        return slope, None
    resid = sum((v - my - slope * (u - mx)) ** 2 for u, v in zip(lx, ly))
    return slope, math.sqrt(resid / (n - 2) / sxx)


def _fit(rows, xkey, quantity, layer, expected, where):
    """Fit the seed-averaged ``quantity`` against ``xkey`` over ``rows``."""
    by_x = {}
    for r in rows:
        v = r["results"][quantity]
        by_x.setdefault(r["task"][xkey], []).append(v if layer is None else v[layer])
    xs = sorted(by_x)
    means = [sum(by_x[x]) / len(by_x[x]) for x in xs]
    fit = dict(where, quantity=quantity, layer=None if layer is None else layer + 1,
               x=xkey, values=xs, mean=means, seeds=[len(by_x[x]) for x in xs],
               expected=expected, slope=None, slope_se=None, note=None)
    if any(m <= 0 for m in means):
        fit["note"] = "a mean is zero; no log-log fit"
    else:
        fit["slope"], fit["slope_se"] = _fit_loglog(xs, means)
    return fit


def rate_fits(records):
    """Log-log slopes in N (expected -1/2) and in eps (expected 1/2).

    In N: for each (instance, L) with at least two widths, the seed-averaged
    coupling gap of each layer and |R_N - Rbar|; tasks differing only in eps
    repeat one coupling run, so each (N, seed) counts once. In eps: for each
    (instance, L, N) with at least two positive eps, the seed-averaged
    E|W_sgd - W_gf| of each layer and |R_sgd - R_gf|. Failed tasks are left
    out. Ordinary least squares on (log x, log mean); the standard error
    needs three points.
    """
    ok = [r for r in records if r["status"] == "ok"]
    fits = {"N": [], "eps": []}
    groups = {}
    for r in ok:
        t = r["task"]
        runs = groups.setdefault((t["instance"], t["L"]), {})
        runs.setdefault((t["N"], t["seed"]), r)
    for (inst, L), runs in groups.items():
        rows = list(runs.values())
        if len({r["task"]["N"] for r in rows}) < 2:
            continue
        where = {"instance": inst, "L": L}
        fits["N"] += [_fit(rows, "N", "gap", l, -0.5, where) for l in range(L - 1)]
        fits["N"].append(_fit(rows, "N", "risk_gap", None, -0.5, where))
    groups = {}
    for r in ok:
        t = r["task"]
        if t["eps"] > 0:
            groups.setdefault((t["instance"], t["L"], t["N"]), []).append(r)
    for (inst, L, N), rows in groups.items():
        if len({r["task"]["eps"] for r in rows}) < 2:
            continue
        where = {"instance": inst, "L": L, "N": N}
        fits["eps"] += [_fit(rows, "eps", "sgd_vs_gf", l, 0.5, where)
                        for l in range(L - 1)]
        fits["eps"].append(_fit(rows, "eps", "risk_sgd_vs_gf", None, 0.5, where))
    return fits


def summarise(plan, records):
    """Counts, failures, rate fits and the task records, as one JSON-ready dict."""
    recs = list(records.values())
    failed = [r for r in recs if r["status"] == "failed"]
    counts = {"tasks": len(recs), "ok": len(recs) - len(failed), "failed": len(failed)}
    return {"format": FORMAT, "counts": counts,
            "failures": {r["id"]: r["error"] for r in failed},
            "settings": plan["settings"], "fits": rate_fits(recs), "tasks": recs}


_CSV_LAYERED = ("gap", "moved", "sgd_vs_gf", "sgd_vs_limit")
_CSV_SCALARS = ("risk", "risk_limit", "risk_gap", "output_gap", "risk_sgd",
                "risk_sgd_vs_gf")


def summary_csv(plan, records):
    """One row per task; per-layer columns ``gap_1`` .. ; floats exactly (repr)."""
    n_layers = max(t["L"] for t in plan["tasks"]) - 1
    head = ["id", "instance", "L", "N", "eps", "seed", "status"]
    head += [f"{k}_{l}" for k in _CSV_LAYERED for l in range(1, n_layers + 1)]
    head += [*_CSV_SCALARS, "seconds", "error"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    for r in records.values():
        t, res = r["task"], r.get("results") or {}
        row = [r["id"], t["instance"], t["L"], t["N"], repr(t["eps"]), t["seed"],
               r["status"]]
        for k in _CSV_LAYERED:
            vals = res.get(k, [])
            row += [repr(vals[l]) if l < len(vals) else "" for l in range(n_layers)]
        row += [repr(res[k]) if k in res else "" for k in _CSV_SCALARS]
        row += [f"{r['seconds']:.3f}", r.get("error", "")]
        writer.writerow(row)
    return buf.getvalue()


def _g(x):
    return "-" if x is None else f"{x:.3g}"


def _columns(rows):
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(summary):
    """The printed summary: seed-averaged results by grid point, failures, fits."""
    groups = {}
    for r in summary["tasks"]:
        t = r["task"]
        groups.setdefault((t["instance"], t["L"], t["N"], t["eps"]), []).append(r)
    rows = [("instance", "L", "N", "eps", "ok", "E|W-Wbar| by layer",
             "E|Wsgd-Wgf| by layer", "|R_N-Rbar|", "s/task")]

    def mean(rs, key, layer=None):
        vals = [r["results"][key] if layer is None else r["results"][key][layer]
                for r in rs if key in r["results"]]
        return sum(vals) / len(vals) if vals else None

    for (inst, L, N, eps), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        gaps = " ".join(_g(mean(ok, "gap", l)) for l in range(L - 1)) if ok else "-"
        sgd = (" ".join(_g(mean(ok, "sgd_vs_gf", l)) for l in range(L - 1))
               if ok and eps > 0 else "-")
        rows.append((inst, str(L), str(N), _g(eps), f"{len(ok)}/{len(rs)}", gaps, sgd,
                     _g(mean(ok, "risk_gap")) if ok else "-",
                     f"{sum(r['seconds'] for r in rs) / len(rs):.2f}"))
    out = [_columns(rows)]
    if summary["failures"]:
        out.append(f"\nfailed tasks ({len(summary['failures'])}):")
        out += [f"  {k}: {v[:160]}" for k, v in summary["failures"].items()]
    names = {"gap": "E|W-Wbar|", "risk_gap": "|R_N-Rbar|", "sgd_vs_gf": "E|Wsgd-Wgf|",
             "risk_sgd_vs_gf": "|R_sgd-R_gf|"}
    for axis, title in (("N", "rate fits in N (expected slope -0.5), seed means"),
                        ("eps", "rate fits in eps (expected slope 0.5), seed means")):
        fits = summary["fits"][axis]
        if not fits:
            continue
        rows = [("instance", "L", *(("N",) if axis == "eps" else ()), "quantity",
                 "layer", axis, "slope", "+-")]
        for f in fits:
            rows.append((f["instance"], str(f["L"]),
                         *((str(f["N"]),) if axis == "eps" else ()),
                         names[f["quantity"]], "-" if f["layer"] is None else
                         str(f["layer"]), ",".join(_g(v) for v in f["values"]),
                         _g(f["slope"]) if f["note"] is None else f["note"],
                         _g(f["slope_se"])))
        out += [f"\n{title}:", _columns(rows)]
    return "\n".join(out)

"""``mfdeep simulate``: files, their description, agreement with the solvers
called directly, divergence, bad input and atomic writes."""

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mfdeep import cli
from mfdeep.errors import DivergenceError, InstanceError
from mfdeep.fast.layered import atomic_limit, mean_fields, solve_limit
from mfdeep.fast.model import TorchModel
from mfdeep.fast.network import draw_network
from mfdeep.fast.train import gradient_flow, sgd
from mfdeep.model import load_instance
from mfdeep.reference.bound import Bound
from mfdeep.reference.contexts import ExactOps, MPOps
from mfdeep.reference.layered import initial_layered_state, layered_drift
from mfdeep.simulate import simulate

EPS64 = float(torch.finfo(torch.float64).eps)
EPS32 = float(torch.finfo(torch.float32).eps)

# A run small enough for a test: 10 RK4 steps of 0.05, 3 records, 3 nodes per
# coordinate for the limit (9 x 9 atom pairs in layer 1).
SMALL = ["--t", "0.5", "--dt", "0.05", "--n-records", "3", "--order", "3"]
TIMES = [0.0, 0.25, 0.5]

# The mlp maps with a learning rate of 1e7: one step throws the weights far
# beyond the default bound |w| <= 1e3.
HOT = """
name = "hot"
description = "mlp maps, learning rate 1e7"
L = 3
T = 1
order = 3
[maps]
input = "affine"
inner = "mlp"
output = "theta_tanh"
[data]
x = [[-1, 0.5], [-0.5, -1], [0, 0.25], [0.5, 1], [1, -0.5], [0.25, 0]]
y = [0.5, -0.5, 0.25, 1, -0.25, 0]
[laws.nu0]
kind = "gaussian"
mean = [0.5, 0.5, 0]
std = [1, 1, 0.5]
[laws.m]
kind = "gaussian"
mean = [0.5]
std = [1]
[laws.nuL]
kind = "gaussian"
mean = [1]
std = [0.5]
[schedule]
kind = "constant"
alpha0 = 10000000
"""


def run_cli(*args):
    """``mfdeep simulate ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["simulate", *args, "--no-progress"])
        except SystemExit as exc:  # argparse rejects the arguments
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The limit and two widths (2 replicas each) of the default instance."""
    out = tmp_path_factory.mktemp("default-run")
    code, stdout, stderr = run_cli("--instance", "default", "--finite", "8", "4",
                                   "--replicas", "2", "--limit", *SMALL,
                                   "--out", str(out))
    assert code == 0, stderr
    description = json.loads((out / "simulation.json").read_text())
    return out, stdout, description


# ---------------------------------------------------------------------------
# Files and their description.


def test_the_command_writes_one_file_per_run_and_the_description(default_run):
    out, stdout, description = default_run
    names = {"limit.npz", "finite_N4.npz", "finite_N8.npz", "simulation.json"}
    assert {p.name for p in out.iterdir()} == names
    assert description["status"] == "complete" and description["error"] is None
    assert "wrote" in stdout and "limit" in stdout and "N=8, R=2" in stdout


def test_the_json_describes_every_array_with_its_shape_and_dtype(default_run):
    out, _, description = default_run
    assert set(description["files"]) == {"limit.npz", "finite_N4.npz", "finite_N8.npz"}
    for name, arrays in description["files"].items():
        with np.load(out / name) as z:
            assert set(z.files) == set(arrays)
            for key in z.files:
                assert arrays[key]["shape"] == list(z[key].shape), (name, key)
                assert arrays[key]["dtype"] == str(z[key].dtype), (name, key)
                assert len(arrays[key]["meaning"]) > 10, (name, key)


def test_the_json_records_instance_settings_seeds_versions_and_times(default_run):
    _, _, d = default_run
    assert d["instance"]["name"] == "default" and d["instance"]["L"] == 3
    assert d["instance"]["T"] == "2"
    assert d["settings"]["times"] == TIMES and d["settings"]["finite"] == [4, 8]
    assert d["settings"]["training"] == "gradient_flow"
    assert d["seeds"]["network_draws"] == 0
    assert {"torch", "numpy", "mfdeep"} <= set(d["versions"])
    assert d["device"]["used"] == "cpu" and d["dtype"] == "float64"
    assert set(d["wall_seconds"]) == {"limit", "finite_N4", "finite_N8", "total"}
    assert d["solver_stats"]["limit"]["rk4_steps"] == 10


def test_the_summary_gap_is_the_gap_between_the_saved_risks(default_run):
    out, _, d = default_run
    with np.load(out / "limit.npz") as lim, np.load(out / "finite_N8.npz") as net:
        gap = np.abs(net["risk"][-1] - lim["risk"][-1])
    assert d["summary"]["N=8"]["risk_gap_to_limit_final_by_replica"] == gap.tolist()
    assert d["summary"]["N=8"]["risk_gap_to_limit_final_mean"] == float(gap.mean())


# ---------------------------------------------------------------------------
# The saved numbers are the solvers' numbers.


def test_the_limit_risk_at_t0_equals_the_reference_backend(default_run):
    out, _, _ = default_run
    atomic = load_instance("default").atomic(3)
    B = Bound(atomic, MPOps(30))
    _, info = layered_drift(B, initial_layered_state(B, *atomic.atomic_laws()))
    risk0 = float(sum(P * B.loss(y, yhat)
                      for y, P, yhat in zip(B.y, B.P, info["yhat"])))
    with np.load(out / "limit.npz") as z:
        # float64 sums of 81 products of O(1) terms per data point: a few
        # hundred roundings at most.
        assert abs(z["risk"][0] - risk0) <= 1e3 * EPS64 * max(1.0, risk0)
        ybar0 = np.array([float(v) for v in info["yhat"]])
        assert np.abs(z["ybar"][0] - ybar0).max() <= 1e3 * EPS64


def test_the_exact_instance_starts_at_the_exact_rational_risk(tmp_path):
    atomic = load_instance("exact").atomic()
    B = Bound(atomic, ExactOps())
    _, info = layered_drift(B, initial_layered_state(B, *atomic.atomic_laws()))
    risk0 = sum(P * B.loss(y, yhat) for y, P, yhat in zip(B.y, B.P, info["yhat"]))
    result = simulate("exact", limit=True, dt=0.1, n_records=2, out=tmp_path)
    # A handful of float64 operations on 2 x 2 atoms.
    assert abs(result["limit"]["risk"][0] - float(risk0)) <= 64 * EPS64


def test_the_limit_trajectory_equals_solve_limit_called_directly(default_run):
    out, _, _ = default_run
    model = TorchModel(load_instance("default").atomic(3))
    lim = atomic_limit(model)
    sol = solve_limit(model, 0.5, dt=0.05, record_times=TIMES, record_states=True,
                      lim=lim)
    with np.load(out / "limit.npz") as z:
        np.testing.assert_array_equal(z["times"], TIMES)
        np.testing.assert_array_equal(z["ybar"], sol.ybar.numpy())
        np.testing.assert_array_equal(z["risk"], sol.risk.numpy())
        for k, state in enumerate(sol.states):
            for l in (1, 2):
                np.testing.assert_array_equal(z[f"W{l}"][k], state[l - 1].numpy())
            fields, _ = mean_fields(model, lim, state, TIMES[k])
            np.testing.assert_array_equal(z["hbar2"][k], fields["hbar"][2].numpy())
            np.testing.assert_array_equal(z["gL"][k], fields["gL"].numpy())
        np.testing.assert_array_equal(z["q0"], lim.q0.numpy())
        # Layer 1's expected displacement under the atom law, by hand.
        q = z["q0"][:, None] * z["qm1"][None, :]
        moved = (np.abs(z["W1"][-1] - z["W1"][0]).mean(axis=-1) * q).sum()
        assert z["moved1"][0] == 0 and z["moved1"][-1] == pytest.approx(moved,
                                                                       rel=1e-12)
        assert z["moved1"][-1] > 1e-3  # the layer moves (claim C12)


def test_a_network_trajectory_equals_gradient_flow_called_directly(default_run):
    out, _, _ = default_run
    instance = load_instance("default")
    net = draw_network(instance, 8, R=2, seed=0)
    final, rec = gradient_flow(TorchModel(instance), net, 0.5, 0.05,
                               record_steps=[0, 5, 10], record_weights=True)
    with np.load(out / "finite_N8.npz") as z:
        np.testing.assert_array_equal(z["times"], TIMES)
        np.testing.assert_array_equal(z["risk"], rec.risk.numpy())
        np.testing.assert_array_equal(z["outputs"], rec.outputs.numpy())
        np.testing.assert_array_equal(z["theta0"], net.theta0.numpy())
        for l in (1, 2):
            np.testing.assert_array_equal(z[f"W{l}_final"], final.W[l - 1].numpy())
            W0, Wt = rec.weights[0][l - 1], rec.weights[-1][l - 1]
            moved = (Wt - W0).abs().mean(dim=(1, 2, 3)).numpy()
            np.testing.assert_array_equal(z[f"moved{l}"][-1], moved)
            assert f"W{l}" not in z.files  # full trajectories only on request


def test_sgd_runs_and_equals_sgd_called_directly(tmp_path):
    result = simulate("exact", finite=[6], limit=False, replicas=2, eps=0.05,
                      n_records=3, out=tmp_path)
    instance = load_instance("exact")
    net = draw_network(instance, 6, R=2, seed=0)
    _, rec = sgd(TorchModel(instance), net, 0.05, 10, seed=1, record_steps=[0, 5, 10])
    a = result["finite"][6]
    np.testing.assert_array_equal(a["risk"], rec.risk.numpy())
    np.testing.assert_array_equal(a["times"], [0.0, 0.25, 0.5])
    d = json.loads((tmp_path / "simulation.json").read_text())
    assert d["settings"]["training"] == "sgd" and d["seeds"]["sgd_samples"] == 1
    assert set(os.listdir(tmp_path)) == {"finite_N6.npz", "simulation.json"}


def test_save_weights_keeps_every_recorded_weight(tmp_path):
    result = simulate("l2", finite=[4], limit=False, t=0.2, dt=0.1, n_records=3,
                      save_weights=True)
    a = result["finite"][4]
    assert a["W1"].shape == (3, 1, 4, 4, 2)
    np.testing.assert_array_equal(a["W1"][-1], a["W1_final"])
    np.testing.assert_array_equal(a["max_abs1"], np.abs(a["W1"]).max(axis=(2, 3, 4)))


def test_float32_gives_float32_arrays_that_agree_with_float64(tmp_path):
    kw = {"finite": [4], "limit": True, "t": 0.2, "dt": 0.1, "n_records": 2,
          "order": 2}
    r32 = simulate("default", dtype="float32", out=tmp_path, **kw)
    r64 = simulate("default", dtype="float64", **kw)
    for part32, part64 in [(r32["limit"], r64["limit"]),
                           (r32["finite"][4], r64["finite"][4])]:
        for name, a in part32.items():
            assert a.dtype == (np.float64 if name == "times" else np.float32), name
        # The same atoms and draws, rounded; two RK4 steps of O(1) quantities:
        # a few hundred float32 roundings.
        assert np.abs(part32["risk"] - part64["risk"]).max() <= 1e3 * EPS32
    d = json.loads((tmp_path / "simulation.json").read_text())
    assert d["dtype"] == "float32"
    assert d["files"]["limit.npz"]["W1"]["dtype"] == "float32"


# ---------------------------------------------------------------------------
# Diverging runs: exit 1, a message naming step and layer, the status on disk.


@pytest.fixture
def hot(tmp_path):
    path = tmp_path / "hot.toml"
    path.write_text(HOT)
    return str(path)


@pytest.mark.parametrize("training", [["--eps", "0.1"], ["--dt", "0.05"]])
def test_a_huge_learning_rate_stops_the_network_run_with_exit_1(hot, tmp_path,
                                                                training):
    out = tmp_path / "out"
    code, _, err = run_cli("--instance", hot, "--finite", "4", *training,
                           "--out", str(out))
    assert code == 1
    assert "diverged" in err and "step 1, layer 1" in err and "|w| <= 1000" in err
    d = json.loads((out / "simulation.json").read_text())
    assert d["status"] == "diverged" and "layer 1" in d["error"]
    assert {p.name for p in out.iterdir()} == {"simulation.json"}


def test_finished_runs_stay_on_disk_when_a_later_one_diverges(tmp_path):
    # With 2 nodes per coordinate the limit's weights stay below 1.51 up to
    # t = 0.1, while the width-8 draws (seed 0) reach 1.85: the bound 1.6
    # stops the network run only.
    code, _, err = run_cli("--limit", "--finite", "8", "--order", "2", "--t", "0.1",
                           "--dt", "0.05", "--n-records", "2", "--max-weight", "1.6",
                           "--out", str(tmp_path))
    assert code == 1, err
    assert "step 1, layer 1" in err
    d = json.loads((tmp_path / "simulation.json").read_text())
    assert d["status"] == "diverged" and set(d["files"]) == {"limit.npz"}
    assert {p.name for p in tmp_path.iterdir()} == {"limit.npz", "simulation.json"}


def test_the_limit_weight_bound_stops_with_exit_1_naming_time_and_layer(tmp_path):
    code, _, err = run_cli("--limit", *SMALL, "--max-weight", "1.2",
                           "--out", str(tmp_path))
    assert code == 1
    assert "t=0 (record 0" in err and "layer 1" in err
    with pytest.raises(DivergenceError, match="layer 1"):
        simulate("default", limit=True, t=0.5, dt=0.05, order=3, max_weight=1.2)
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------------------
# Bad input: exit 2, a message naming the field, nothing written.


@pytest.mark.parametrize("args,message", [
    ([], "give --finite N [N ...], --limit, or both"),
    (["--finite", "1"], "width N=1 is not an integer >= 2"),
    (["--limit", "--t", "3"], "t=3.0 (--t)"),
    (["--limit", "--t", "0"], "t=0.0 (--t)"),
    (["--limit", "--instance", "nope"], "instance='nope' (--instance)"),
    (["--limit", "--dtype", "float16"], "argument --dtype: invalid choice"),
    (["--finite", "4", "--eps", "0.03"], "eps=0.03 (--eps)"),
    (["--finite", "4", "--eps", "-1"], "eps=-1.0 (--eps)"),
    (["--limit", "--dt", "0"], "dt=0.0 (--dt)"),
    (["--limit", "--n-records", "1"], "n_records=1 (--n-records)"),
    (["--limit", "--dt", "1", "--n-records", "4"], "n_records=4 (--n-records)"),
    (["--finite", "4", "--replicas", "0"], "replicas=0 (--replicas)"),
    (["--limit", "--order", "0"], "order=0 (--order)"),
    (["--limit", "--max-weight", "-1"], "max_weight=-1.0 (--max-weight)"),
    (["--limit", "--device", "tpu"], "device='tpu' (--device)"),
])
def test_bad_input_exits_2_naming_the_field(args, message, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(*args, "--out", str(out))
    assert code == 2
    assert message in err
    assert not out.exists()


def test_cuda_without_cuda_exits_2_and_auto_falls_back_to_the_cpu(monkeypatch,
                                                                  tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli("--limit", "--device", "cuda", "--out", str(tmp_path))
    assert code == 2 and "device='cuda' (--device): CUDA is not available" in err
    result = simulate("exact", limit=True, dt=0.25, n_records=2, device="auto")
    assert result["description"]["device"] == {"requested": "auto", "used": "cpu"}


def test_the_function_rejects_bad_input_before_computing():
    with pytest.raises(InstanceError, match=r"finite=\[16, 1\]"):
        simulate("default", finite=[16, 1])
    with pytest.raises(InstanceError, match="dtype='float16'"):
        simulate("default", dtype="float16")
    with pytest.raises(InstanceError, match="instance=3"):
        simulate(3)


# ---------------------------------------------------------------------------
# Atomic writes.


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(monkeypatch, tmp_path):
    def broken_savez(fh, **arrays):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        simulate("exact", limit=True, dt=0.25, n_records=2, out=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"simulation.json"}
    d = json.loads((tmp_path / "simulation.json").read_text())
    assert d["status"] == "failed" and "disk full" in d["error"]


def test_the_entry_point_runs_the_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mfdeep", "simulate", "--instance",
                           "exact", "--limit", "--dt", "0.25", "--n-records", "2",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "simulate: 100%" in proc.stderr  # the progress bar, on stderr
    assert (tmp_path / "limit.npz").is_file() and no_temp_files(tmp_path)


# ---------------------------------------------------------------------------
# GPU.


@pytest.mark.gpu
def test_cuda_agrees_with_the_cpu(tmp_path):
    kw = {"finite": [8], "limit": True, "replicas": 2, "t": 0.5, "dt": 0.05,
          "n_records": 3, "order": 3}
    gpu = simulate("default", device="cuda", out=tmp_path, **kw)
    cpu = simulate("default", device="cpu", **kw)
    assert gpu["description"]["device"]["used"].startswith("cuda")
    # float64 with other summation orders: round-off (~1e-15) carried through
    # 10 RK4 steps of a contracting flow; 1e-10 leaves a wide margin.
    for name in ("ybar", "risk", "W1", "W2", "hL"):
        np.testing.assert_allclose(gpu["limit"][name], cpu["limit"][name],
                                   rtol=0, atol=1e-10)
    for name in ("risk", "outputs", "W1_final", "W2_final"):
        np.testing.assert_allclose(gpu["finite"][8][name], cpu["finite"][8][name],
                                   rtol=0, atol=1e-10)
    # The same draws on both devices (sampled on the CPU).
    np.testing.assert_array_equal(gpu["finite"][8]["theta0"],
                                  cpu["finite"][8]["theta0"])
    sgd_run = simulate("default", finite=[8], limit=False, eps=0.05, t=0.5,
                       n_records=2, device="cuda")
    assert np.isfinite(sgd_run["finite"][8]["risk"]).all()

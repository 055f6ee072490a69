"""``mfdeep sweep``: grid validation, engines, resumption, failed tasks.

Every run here is real: worker processes, a local Ray cluster, a sweep
killed with SIGKILL in the middle. One small grid (12 tasks of about half a
second) serves every run, so the engines, the interrupted run and the
repeated run are compared number for number with one uninterrupted run.
"""

import contextlib
import copy
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from mfdeep import cli
from mfdeep.model.toml_io import BUILTIN_DIR
from mfdeep.sweep import (GridError, SweepDirError, _OutputDir, grid_from_dict,
                          load_grid, read_task_file, run_sweep)

SMALL_GRID = """\
description = "12 small tasks"
[grid]
instance = ["default"]
N = [8, 16]
eps = [0, 0.05, 0.025]
seeds = 2
[settings]
t = 0.25
dt = 0.05
order = 5
"""
N_TASKS = 12


def sweep_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mfdeep", "sweep", "--no-progress",
                           *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def task_files(out):
    return sorted((out / "tasks").glob("*.json"))


def results_by_id(out):
    records = [json.loads(p.read_text()) for p in task_files(out)]
    return {r["id"]: r.get("results") for r in records}


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "small.toml"
    path.write_text(SMALL_GRID)
    return path


@pytest.fixture(scope="module")
def local_run(small_grid, tmp_path_factory):
    """The small grid run once, uninterrupted, with the local engine."""
    out = tmp_path_factory.mktemp("local")
    outcome = run_sweep(load_grid(small_grid), out, engine="local", workers=2)
    return out, outcome


# ---------------------------------------------------------------------------
# Validation: every error names the field (and the value received).

VALID = {"grid": {"instance": ["default"], "N": [8, 16], "eps": [0, 0.05],
                  "seed": [0, 1]},
         "settings": {"t": 0.25, "dt": 0.05, "order": 5}}
DELETE = object()


def _has_cuda():
    import torch

    return torch.cuda.is_available()


BAD_GRIDS = [
    # (id, {dotted key: new value or DELETE}, substrings of the message)
    ("unknown-top-key", {"grdi": {}}, ["unknown key(s) ['grdi']", "allowed"]),
    ("unknown-grid-key", {"grid.Ns": [8]}, ["['Ns']", "[grid]", "allowed"]),
    ("unknown-settings-key", {"settings.horizon": 1}, ["['horizon']", "[settings]"]),
    ("grid-not-table", {"grid": 3}, ["grid=3", "table"]),
    ("settings-not-table", {"settings": [1]}, ["settings=[1]", "table"]),
    ("missing-grid", {"grid": DELETE}, ["[grid]"]),
    ("missing-instance", {"grid.instance": DELETE}, ["grid.instance"]),
    ("instance-not-list", {"grid.instance": "default"}, ["grid.instance='default'",
                                                          "list"]),
    ("instance-empty", {"grid.instance": []}, ["grid.instance", "empty"]),
    ("instance-unknown", {"grid.instance": ["nope"]}, ["grid.instance[0]='nope'",
                                                       "built-in"]),
    ("instance-not-string", {"grid.instance": [3]}, ["grid.instance[0]=3"]),
    ("instance-missing-file", {"grid.instance": ["missing.toml"]},
     ["grid.instance[0]='missing.toml'", "no file"]),
    ("instance-bad-field", {"grid.instance": ["bad_keys.toml"]},
     ["grid.instance[0]='bad_keys.toml'", "colour"]),
    ("instance-malformed", {"grid.instance": ["broken.toml"]},
     ["grid.instance[0]='broken.toml'", "malformed TOML"]),
    ("instance-twice", {"grid.instance": ["default", "default"]},
     ["grid.instance[1]='default'"]),
    ("missing-N", {"grid.N": DELETE}, ["grid.N"]),
    ("N-not-list", {"grid.N": 64}, ["grid.N=64", "list"]),
    ("N-empty", {"grid.N": []}, ["grid.N", "empty"]),
    ("N-below-2", {"grid.N": [8, 1]}, ["grid.N[1]=1", ">= 2"]),
    ("N-float", {"grid.N": [8.5]}, ["grid.N[0]=8.5", "integer"]),
    ("N-bool", {"grid.N": [True]}, ["grid.N[0]=True", "integer"]),
    ("N-repeated", {"grid.N": [8, 8]}, ["grid.N[1]=8", "repeats"]),
    ("L-below-2", {"grid.L": [1]}, ["grid.L[0]=1", ">= 2"]),
    ("L-string", {"grid.L": ["3"]}, ["grid.L[0]='3'", "integer"]),
    ("L-empty", {"grid.L": []}, ["grid.L", "empty"]),
    ("eps-negative", {"grid.eps": [-0.1]}, ["grid.eps[0]=-0.1", ">= 0"]),
    ("eps-string", {"grid.eps": ["0.05"]}, ["grid.eps[0]='0.05'"]),
    ("eps-infinite", {"grid.eps": [math.inf]}, ["grid.eps[0]=inf"]),
    ("eps-not-dividing-t", {"grid.eps": [0.03]}, ["grid.eps[0]=0.03", "divide",
                                                  "t / n"]),
    ("eps-beyond-t", {"grid.eps": [1.0]}, ["grid.eps[0]=1.0", "divide"]),
    ("eps-repeated", {"grid.eps": [0.05, 0.05]}, ["grid.eps[1]=0.05", "repeats"]),
    ("seed-negative", {"grid.seed": [-1]}, ["grid.seed[0]=-1", ">= 0"]),
    ("seed-and-seeds", {"grid.seeds": 2}, ["seed and seeds"]),
    ("seeds-zero", {"grid.seed": DELETE, "grid.seeds": 0}, ["grid.seeds=0"]),
    ("seeds-list", {"grid.seed": DELETE, "grid.seeds": [3]}, ["grid.seeds=[3]"]),
    ("missing-t", {"settings.t": DELETE}, ["settings.t"]),
    ("t-zero", {"settings.t": 0}, ["settings.t=0.0", "0 < t"]),
    ("t-beyond-T", {"settings.t": 5}, ["settings.t=5.0", "T=2", "'default'"]),
    ("t-string", {"settings.t": "0.5"}, ["settings.t='0.5'"]),
    ("dt-zero", {"settings.dt": 0}, ["settings.dt=0.0"]),
    ("dt-beyond-t", {"settings.dt": 0.5}, ["settings.dt=0.5", "dt <= t"]),
    ("order-zero", {"settings.order": 0}, ["settings.order=0"]),
    ("max-weight-negative", {"settings.max_weight": -1}, ["settings.max_weight=-1.0"]),
    ("dtype-unknown", {"settings.dtype": "float16"}, ["settings.dtype='float16'",
                                                     "float64"]),
    ("device-unknown", {"settings.device": "tpu"}, ["settings.device='tpu'", "cpu"]),
    ("gpu-fraction-on-cpu", {"settings.gpu_fraction": 0.5},
     ["settings.gpu_fraction=0.5", "cpu"]),
    ("gpu-fraction-above-1", {"settings.device": "cuda", "settings.gpu_fraction": 2},
     ["settings.gpu_fraction=2.0"]),
    ("cuda-without-cuda", {"settings.device": "cuda"},
     ['settings.device="cuda"', "no CUDA"]),
    ("description-not-string", {"description": 3}, ["description=3", "string"]),
]


def _mutate(doc, changes):
    doc = copy.deepcopy(doc)
    for key, value in changes.items():
        *parents, last = key.split(".")
        table = doc
        for p in parents:
            table = table[p]
        if value is DELETE:
            del table[last]
        else:
            table[last] = value
    return doc


@pytest.fixture
def instance_files(tmp_path):
    default = (BUILTIN_DIR / "default.toml").read_text()
    (tmp_path / "bad_keys.toml").write_text(default + '\ncolour = "red"\n')
    (tmp_path / "broken.toml").write_text(default + "\n[maps\n")
    return tmp_path


def test_the_valid_grid_passes_so_each_error_below_is_its_mutation(instance_files):
    plan = grid_from_dict(VALID, base=instance_files)
    assert len(plan["tasks"]) == 1 * 2 * 2 * 2
    assert plan["tasks"][0]["id"] == "default-L3-N8-eps0.0-s0"


@pytest.mark.parametrize("changes,parts", [
    pytest.param(changes, parts, id=name, marks=pytest.mark.skipif(
        name == "cuda-without-cuda" and _has_cuda(), reason="this machine has CUDA"))
    for name, changes, parts in BAD_GRIDS])
def test_a_bad_grid_is_an_error_naming_the_field_and_value(changes, parts,
                                                          instance_files):
    with pytest.raises(GridError) as info:
        grid_from_dict(_mutate(VALID, changes), base=instance_files)
    for part in parts:
        assert part in str(info.value)


def test_malformed_and_missing_grid_files_are_errors_naming_the_file(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("[grid\nN = [8]\n")
    with pytest.raises(GridError, match="malformed TOML.*fix the syntax"):
        load_grid(path)
    with pytest.raises(GridError, match="cannot read the grid file .*nothere.toml"):
        load_grid(tmp_path / "nothere.toml")


def test_an_error_in_a_file_starts_with_the_file_name(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(SMALL_GRID.replace("N = [8, 16]", "N = [8, 0]"))
    with pytest.raises(GridError, match=r"g\.toml: grid\.N\[1\]=0 is below 2"):
        load_grid(path)


def test_instance_paths_are_relative_to_the_grid_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.toml").write_text((BUILTIN_DIR / "l2.toml").read_text())
    path = tmp_path / "g.toml"
    path.write_text(SMALL_GRID.replace('["default"]', '["default", "sub/mine.toml"]'))
    plan = load_grid(path)
    assert list(plan["instances"]) == ["default", "mine"]
    assert {t["L"] for t in plan["tasks"] if t["instance"] == "mine"} == {2}


def test_bad_grid_on_the_command_line_exits_2_with_the_message(tmp_path, capsys):
    path = tmp_path / "g.toml"
    path.write_text(SMALL_GRID.replace("t = 0.25", "t = -1"))
    code = cli.main(["sweep", "--grid", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "settings.t=-1.0 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_missing_ray_is_an_error_naming_the_install(small_grid, tmp_path,
                                                      monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = cli.main(["sweep", "--grid", str(small_grid), "--out", str(tmp_path),
                     "--engine", "ray"])
    assert code == 2
    assert "pip install 'mfdeep[ray]'" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The local engine: files, numbers, fits, determinism.


def test_local_sweep_writes_one_complete_file_per_task(local_run, small_grid):
    out, outcome = local_run
    plan = load_grid(small_grid)
    ids = [t["id"] for t in plan["tasks"]]
    assert len(ids) == N_TASKS == len(set(ids))
    assert [p.stem for p in task_files(out)] == sorted(ids)
    assert not list((out / "tasks").glob(".*"))
    assert json.loads((out / "grid.json").read_text())["tasks"] == plan["tasks"]
    for task in plan["tasks"]:
        record = read_task_file(out / "tasks" / f"{task['id']}.json", task)
        assert record is not None and record["status"] == "ok"
        res = record["results"]
        values = [x for v in res.values() for x in (v if isinstance(v, list) else [v])]
        assert all(math.isfinite(x) for x in values)
        assert len(res["gap"]) == len(res["moved"]) == task["L"] - 1
        assert ("sgd_vs_gf" in res) == (task["eps"] > 0)
        # The coupling gap is small next to the movement (claim C12's premise).
        assert all(0 < g < m for g, m in zip(res["gap"], res["moved"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"tasks": N_TASKS, "ok": N_TASKS, "failed": 0}
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + N_TASKS and rows[0].startswith("id,instance,L,N,eps")


def test_tasks_differing_only_in_eps_share_the_coupling_run(local_run):
    _, outcome = local_run
    by_draw = {}
    for r in outcome["records"].values():
        t = r["task"]
        by_draw.setdefault((t["N"], t["seed"]), []).append(r["results"]["gap"])
    assert all(len(v) == 3 and v[0] == v[1] == v[2] for v in by_draw.values())


def _loglog_slope(points):
    (x0, y0), (x1, y1) = points
    return (math.log(y1) - math.log(y0)) / (math.log(x1) - math.log(x0))


def test_rate_fits_are_the_slopes_of_the_seed_means(local_run):
    _, outcome = local_run
    records = list(outcome["records"].values())
    fits = outcome["summary"]["fits"]
    # In N: one fit per layer and one of the risk gap; eps = 0 tasks suffice
    # since every eps shares the coupling run.
    assert [(f["quantity"], f["layer"]) for f in fits["N"]] == [
        ("gap", 1), ("gap", 2), ("risk_gap", None)]
    for f in fits["N"][:2]:
        means = [sum(r["results"]["gap"][f["layer"] - 1] for r in records
                     if r["task"]["N"] == N and r["task"]["eps"] == 0) / 2
                 for N in (8, 16)]
        assert f["values"] == [8, 16] and f["mean"] == pytest.approx(means, rel=1e-15)
        assert f["slope"] == pytest.approx(_loglog_slope(zip((8, 16), means)),
                                           rel=1e-12)
    # In eps: per width, the two positive steps.
    assert [(f["N"], f["quantity"], f["layer"]) for f in fits["eps"]] == [
        (N, q, l) for N in (8, 16)
        for q, l in (("sgd_vs_gf", 1), ("sgd_vs_gf", 2), ("risk_sgd_vs_gf", None))]
    for f in fits["eps"]:
        key = (lambda r: r["results"][f["quantity"]] if f["layer"] is None
               else r["results"][f["quantity"]][f["layer"] - 1])
        means = [sum(key(r) for r in records
                     if r["task"]["N"] == f["N"] and r["task"]["eps"] == e) / 2
                 for e in (0.025, 0.05)]
        assert f["slope"] == pytest.approx(_loglog_slope(zip((0.025, 0.05), means)),
                                           rel=1e-12)


def test_the_same_grid_again_gives_identical_numbers(local_run, small_grid, tmp_path):
    out, _ = local_run
    run_sweep(load_grid(small_grid), tmp_path, engine="local", workers=1)
    assert results_by_id(tmp_path) == results_by_id(out)


def test_a_folder_with_results_needs_resume_and_the_same_plan(local_run, small_grid,
                                                             tmp_path):
    out, _ = local_run
    with pytest.raises(SweepDirError, match="holds 12 finished task.*--resume"):
        run_sweep(load_grid(small_grid), out)
    other = tmp_path / "other.toml"
    other.write_text(SMALL_GRID.replace("t = 0.25", "t = 0.2"))
    with pytest.raises(SweepDirError, match="different sweep plan.*settings.t 0.25 "
                       "-> 0.2.*another --out"):
        run_sweep(load_grid(other), out, resume=True)
    with _OutputDir(out), pytest.raises(SweepDirError, match="another sweep"):
        run_sweep(load_grid(small_grid), out, resume=True)


# ---------------------------------------------------------------------------
# Broken or half-written task files count as not done.


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other-task", "no-results",
                                    "nan", "short-layers", "unknown-status"])
def test_a_damaged_task_file_is_not_done(local_run, damage, tmp_path):
    out, _ = local_run
    path = task_files(out)[0]
    task = json.loads(path.read_text())["task"]
    text = path.read_text()
    record = json.loads(text)
    assert read_task_file(path, task) is not None  # canary: intact is done
    if damage == "truncated":
        bad = text[: len(text) // 2]
    elif damage == "garbage":
        bad = "\x00\x01 not json"
    else:
        if damage == "other-task":
            record["task"] = dict(task, seed=task["seed"] + 1)
        elif damage == "no-results":
            del record["results"]
        elif damage == "nan":
            record["results"]["gap"][0] = float("nan")
        elif damage == "short-layers":
            record["results"]["gap"] = record["results"]["gap"][:1]
        else:
            record["status"] = "running"
        bad = json.dumps(record)
    (tmp_path / path.name).write_text(bad)
    assert read_task_file(tmp_path / path.name, task) is None


def test_resume_reruns_exactly_a_half_written_task(local_run, small_grid, tmp_path):
    out, _ = local_run
    for p in [out / "grid.json", *task_files(out)]:
        target = tmp_path / p.relative_to(out)
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(p.read_bytes())
    victim = task_files(tmp_path)[5]
    text = victim.read_text()
    victim.write_text(text[: len(text) // 3])
    outcome = run_sweep(load_grid(small_grid), tmp_path, resume=True, workers=1)
    assert outcome["ran"] == [victim.stem]
    assert len(outcome["kept"]) == N_TASKS - 1
    assert victim.read_text() != text[: len(text) // 3]
    assert results_by_id(tmp_path) == results_by_id(out)


# ---------------------------------------------------------------------------
# Killed mid-run with SIGKILL, then resumed.


def test_a_sweep_killed_with_sigkill_resumes_with_no_task_lost_or_doubled(
        local_run, small_grid, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfdeep", "sweep", "--no-progress", "--workers", "2",
         "--grid", str(small_grid), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not task_files(out) and proc.poll() is None:
            assert time.monotonic() < deadline, "no task finished within 120 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = len(task_files(out))
    assert 1 <= finished < N_TASKS, f"{finished} tasks finished before the kill"

    # What a killed writer could leave: a temporary file, and (never made by
    # the sweep, which renames complete files) a half-written task file.
    plan = load_grid(small_grid)
    done = {p.stem for p in task_files(out)}
    missing = next(t["id"] for t in plan["tasks"] if t["id"] not in done)
    (out / "tasks" / f".{missing}.json.x1y2.tmp").write_text('{"format": 1, "id"')
    (out / "tasks" / f"{missing}.json").write_text('{"format": 1, "id": "' + missing)

    proc = sweep_cli("--grid", small_grid, "--out", out, "--resume", "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    assert f"resume: skipping {finished} finished task(s) (0 failed); running " \
           f"{N_TASKS - finished}" in proc.stdout
    assert f"{N_TASKS} of {N_TASKS} tasks ok" in proc.stdout
    assert [p.stem for p in task_files(out)] == sorted(t["id"] for t in plan["tasks"])
    assert not list((out / "tasks").glob(".*"))
    summary = json.loads((out / "summary.json").read_text())
    assert [r["id"] for r in summary["tasks"]] == [t["id"] for t in plan["tasks"]]
    assert results_by_id(out) == results_by_id(local_run[0])


# ---------------------------------------------------------------------------
# Ray: a real local cluster gives the local engine's numbers.


def test_ray_engine_gives_the_numbers_of_the_local_engine(local_run, small_grid,
                                                          tmp_path):
    pytest.importorskip("ray", reason="the ray engine needs `pip install mfdeep[ray]`")
    proc = sweep_cli("--grid", small_grid, "--out", tmp_path, "--engine", "ray",
                     "--workers", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{N_TASKS} of {N_TASKS} tasks ok" in proc.stdout
    local = results_by_id(local_run[0])
    assert len(local) == N_TASKS
    assert results_by_id(tmp_path) == local  # bit for bit
    ours = json.loads((tmp_path / "summary.json").read_text())["fits"]
    assert ours == local_run[1]["summary"]["fits"]


def test_a_task_whose_ray_worker_dies_is_lost_not_failed(tmp_path, monkeypatch):
    # A Ray worker that dies under a task (here: os._exit inside it) must not
    # leave a `failed` file that --resume would skip: the task is lost, the
    # other task is written, and a resumed run computes the lost one.
    pytest.importorskip("ray", reason="the ray engine needs `pip install mfdeep[ray]`")
    import mfdeep.sweep as sweep
    from mfdeep.sweep import WorkerDied

    plan = grid_from_dict({"grid": {"instance": ["default"], "N": [8], "seed": [0, 1]},
                           "settings": {"t": 0.1, "dt": 0.05, "order": 3}})
    doomed = plan["tasks"][0]["id"]
    real = sweep.run_task

    def crashing(payload):  # pickled by value into the Ray workers
        if payload["task"]["id"] == doomed:
            os._exit(3)
        return real(payload)

    monkeypatch.setattr(sweep, "run_task", crashing)
    out = tmp_path / "out"
    with pytest.raises(WorkerDied, match="1 task\\(s\\) lost their Ray worker"):
        run_sweep(plan, out, engine="ray", workers=2)
    assert [p.stem for p in task_files(out)] == [plan["tasks"][1]["id"]]

    monkeypatch.setattr(sweep, "run_task", real)
    outcome = run_sweep(plan, out, engine="local", workers=1, resume=True)
    assert outcome["ran"] == [doomed]
    assert all(r["status"] == "ok" for r in outcome["records"].values())


# ---------------------------------------------------------------------------
# A diverging task fails with its reason; the others finish.


def test_a_diverging_task_is_marked_failed_and_the_others_finish(tmp_path):
    hot = (BUILTIN_DIR / "default.toml").read_text().replace("alpha0 = 1",
                                                            "alpha0 = 1000000")
    assert hot != (BUILTIN_DIR / "default.toml").read_text()
    (tmp_path / "hot.toml").write_text(hot)
    grid = tmp_path / "g.toml"
    grid.write_text("[grid]\ninstance = ['default', 'hot.toml']\nN = [8]\n"
                    "[settings]\nt = 0.1\norder = 3\nmax_weight = 100.0\n")
    out = tmp_path / "out"
    proc = sweep_cli("--grid", grid, "--out", out, "--workers", 2)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 2 tasks ok, 1 failed" in proc.stdout
    ok = json.loads((out / "tasks" / "default-L3-N8-eps0.0-s0.json").read_text())
    bad = json.loads((out / "tasks" / "hot-L3-N8-eps0.0-s0.json").read_text())
    assert ok["status"] == "ok"
    assert bad["status"] == "failed" and "results" not in bad
    assert bad["error"].startswith("DivergenceError: network weights beyond the bound "
                                   "|w| <= 100 at step 1, layer")
    assert "hot-L3-N8-eps0.0-s0 failed: DivergenceError" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == {"hot-L3-N8-eps0.0-s0": bad["error"]}

    # --resume keeps a failed task; --retry-failed runs it (alone) again.
    plan = load_grid(grid)
    outcome = run_sweep(plan, out, resume=True)
    assert outcome["ran"] == [] and len(outcome["kept"]) == 2
    outcome = run_sweep(plan, out, retry_failed=True, workers=1)
    assert outcome["ran"] == ["hot-L3-N8-eps0.0-s0"]
    assert outcome["records"]["hot-L3-N8-eps0.0-s0"]["error"] == bad["error"]


def test_help_documents_the_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "mfdeep", "sweep", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "exit codes: 0 every task ok; 1 some task failed" in proc.stdout
    assert "130 interrupted" in proc.stdout


def _children(pid):
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid):
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_workers_die_with_a_sweep_whose_parent_alone_is_killed(small_grid, tmp_path):
    # SIGKILL to the parent only (not its process group): the pool workers
    # must not live on, holding memory and computing beside a resumed run.
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfdeep", "sweep", "--no-progress", "--workers", "2",
         "--grid", str(small_grid), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "the pool did not start within 120 s"
            workers = [p for p in _children(proc.pid)
                       if "spawn" in pathlib.Path(f"/proc/{p}/cmdline").read_bytes()
                       .decode(errors="replace")]
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers and not any(_alive(p) for p in workers)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_reordered_grid_resumes_the_same_folder(local_run, small_grid, tmp_path):
    # Tasks are compared by id, not by their order in the file.
    import shutil

    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    reordered = tmp_path / "reordered.toml"
    assert "N = [8, 16]" in SMALL_GRID
    reordered.write_text(SMALL_GRID.replace("N = [8, 16]", "N = [16, 8]"))
    proc = sweep_cli("--grid", reordered, "--out", out, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"resume: skipping {N_TASKS} finished task(s)" in proc.stdout


@pytest.mark.parametrize("where", ["file", "below-file"])
def test_an_out_that_is_a_file_is_bad_input(small_grid, tmp_path, where, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "sub"
    code = cli.main(["sweep", "--grid", str(small_grid), "--out", str(out),
                     "--no-progress"])
    assert code == 2
    assert "give a folder path" in capsys.readouterr().err


def test_a_grid_file_that_is_not_utf8_is_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_bytes(b"description = \"\xff\xfe\"\n")
    with pytest.raises(GridError, match="not UTF-8"):
        load_grid(bad)

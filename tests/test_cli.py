"""The command line: reports, exit codes and error messages."""

import json
import subprocess
import sys

import pytest

from mfdeep import claims, cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "mfdeep", *args],
                          capture_output=True, text=True, timeout=600)


def test_verify_c3_c7_on_exact_passes_and_writes_the_report(tmp_path):
    proc = run("verify", "--instance", "exact", "--claims", "C3,C7", "--quick",
               "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "all claims hold" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["instance"] == "exact"
    assert [c["id"] for c in report["claims"]] == ["C3", "C7"]
    for c in report["claims"]:
        assert set(c) >= {"id", "statement", "holds", "figure", "bound", "details"}
        assert c["holds"] is True and c["figure"] == 0.0
    assert (tmp_path / "report.md").read_text().startswith("# mfdeep verify")
    assert "python-flint" in report["environment"]


@pytest.mark.parametrize("args,message", [
    (["--instance", "nope"], "neither a built-in"),
    (["--claims", "C99"], "unknown claim"),
])
def test_bad_input_exits_2_with_a_message(args, message, tmp_path):
    proc = run("verify", *args, "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_failing_claim_exits_1(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(claims.CHECKS, "C3", lambda instance, cfg: (1.0, 0.0, {}))
    code = cli.main(["verify", "--instance", "exact", "--claims", "C3",
                     "--out", str(tmp_path), "--no-progress"])
    assert code == 1
    assert "SOME CLAIMS FAIL" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["claims"][0]["holds"] is False


def test_the_report_records_level_device_seed_sizes_and_environment(tmp_path):
    code = cli.main(["verify", "--instance", "exact", "--claims", "C3", "--quick",
                     "--seed", "3", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["level"], report["device"], report["seed"]) == ("quick", "cpu", 3)
    assert report["sizes"] == {"C3": {"widths": [2, 3]}}
    assert {"torch", "numpy", "device", "cpu_count"} <= set(report["environment"])
    md = (tmp_path / "report.md").read_text()
    assert "## Environment" in md and "Level `quick`" in md


@pytest.mark.parametrize("args,message", [
    (["--quick", "--full"], "not allowed with"),
    (["--device", "tpu"], "use cpu, cuda"),
    (["--device", "cudafoo"], "use cpu, cuda"),
])
def test_bad_level_or_device_exits_2(args, message, tmp_path):
    proc = run("verify", "--claims", "C3", *args, "--out", str(tmp_path),
               "--no-progress")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_cuda_without_a_device_exits_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run("verify", "--claims", "C3", "--device", "cuda", "--out", str(tmp_path),
               "--no-progress")
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_verify_draws_every_figure_and_plot_redraws_them(tmp_path, monkeypatch):
    # Tiny sizes: the figures are under test here, not the rates (which the
    # tests in tests/fast check at their real sizes), so the exit code may
    # be 0 or 1.
    monkeypatch.setitem(claims.SIZES["C8"], "quick",
                        {"plan": ((8, 4), (16, 2))})
    monkeypatch.setitem(claims.SIZES["C9"], "quick",
                        {"N": 8, "R": 4, "eps": (0.1, 0.05)})
    code = cli.main(["verify", "--claims", "C4,C8,C9,C10,C12", "--quick",
                     "--out", str(tmp_path), "--no-progress"])
    assert code in (0, 1)
    names = {"c4_picard.png", "c7_dependence.png", "c8_coupling.png", "c9_sgd.png",
             "c10_trajectories.png", "c12_displacement.png"}
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    md = (tmp_path / "report.md").read_text()
    assert all(f"({name})" in md for name in names)
    assert not list(tmp_path.glob(".*.tmp"))

    again = tmp_path / "again"
    assert cli.main(["plot", str(tmp_path / "report.json"), "--out", str(again)]) == 0
    assert {p.name for p in again.iterdir()} == names


def test_plot_rejects_a_file_that_is_not_a_report(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    assert cli.main(["plot", str(bad)]) == 2
    assert "not a verify report" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path / "missing.json")]) == 2


@pytest.mark.gpu
def test_verify_runs_the_fast_claims_on_cuda(tmp_path, monkeypatch):
    monkeypatch.setitem(claims.SIZES["C8"], "quick", {"plan": ((16, 8), (32, 4))})
    code = cli.main(["verify", "--claims", "C1,C5,C8", "--quick", "--device", "cuda",
                     "--out", str(tmp_path), "--no-progress", "--no-plots"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["device"] == "cuda" and "device_name" in report["environment"]
    by_id = {c["id"]: c for c in report["claims"]}
    assert by_id["C1"]["holds"] and by_id["C5"]["holds"], report
    assert code in (0, 1)  # C8's slope at two tiny widths is not under test


@pytest.mark.parametrize("args,message", [
    (["--order", "0"], "--order 0 is below 1"),
    (["--degree", "0"], "--degree 0 is below 1"),
    (["--prec", "1"], "--prec 1 is below 16"),
])
def test_bad_certify_sizes_exit_2_before_any_work(args, message, tmp_path, capsys):
    assert cli.main(["certify", "--instance", "exact", *args,
                     "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "certify"])
def test_an_out_below_a_file_exits_2(command, tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    extra = ["--claims", "C3", "--no-progress"] if command == "verify" else []
    assert cli.main([command, "--instance", "exact", *extra,
                     "--out", str(blocker / "sub")]) == 2
    assert "lies below the file" in capsys.readouterr().err


@pytest.mark.parametrize("report", ['{"claims": []}', '{"instance": "x", "claims": 3}',
                                    '{"instance": "x", "claims": [1]}'])
def test_plot_rejects_malformed_reports(report, tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text(report)
    assert cli.main(["plot", str(bad)]) == 2
    assert "not a verify report" in capsys.readouterr().err


def test_simulate_rejects_a_seed_torch_cannot_take(tmp_path, capsys):
    assert cli.main(["simulate", "--finite", "4", "--seed", str(2**64),
                     "--out", str(tmp_path), "--no-progress"]) == 2
    assert "[0, 2**63)" in capsys.readouterr().err


def test_properties_without_pytest_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytest" else real(name, *a))
    assert cli.main(["properties", "--profile", "ci"]) == 2
    assert "pip install 'mfdeep[test]'" in capsys.readouterr().err

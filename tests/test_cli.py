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
    monkeypatch.setitem(claims.CHECKS, "C3", lambda instance, quick: (1.0, 0.0, {}))
    code = cli.main(["verify", "--instance", "exact", "--claims", "C3",
                     "--out", str(tmp_path), "--no-progress"])
    assert code == 1
    assert "SOME CLAIMS FAIL" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["claims"][0]["holds"] is False

"""The README's two commands are the ones CI and newcomers run."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_the_readme_gives_two_commands_one_for_verify_one_for_the_tests():
    install_verify, tests = _readme_commands()
    assert install_verify.startswith("python3 -m venv .venv")
    assert "torch==2.13.0" in install_verify and install_verify.endswith("mfdeep verify")
    assert "torch==2.13.0" in tests and "HYPOTHESIS_PROFILE=ci" in tests
    # The first install of each is torch itself, before the project.
    for cmd in (install_verify, tests):
        assert cmd.split("pip install ")[1].startswith("torch==2.13.0 ")


def test_ci_runs_exactly_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def _python_blocks():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):text.index("## Instance files")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_python_api_examples_run_as_written(tmp_path):
    # Each block as its own script in a scratch folder (the second one
    # writes sim-out/ and sweep-out/ and starts worker processes).
    import subprocess
    import sys

    blocks = _python_blocks()
    assert len(blocks) == 2
    for k, block in enumerate(blocks):
        script = tmp_path / f"example{k}.py"
        script.write_text(block)
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip(), f"block {k} printed nothing"
    assert (tmp_path / "sim-out" / "simulation.json").is_file()
    assert (tmp_path / "sweep-out" / "summary.json").is_file()

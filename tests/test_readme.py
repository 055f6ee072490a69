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

"""The README's two commands are the ones that work: CI runs exactly the test command."""

import re

from tests.conftest import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands for a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_fresh_machine_commands():
    quickstart, tests = _commands()
    assert "hypernas run examples/quickstart.yaml" in quickstart and "python3 -m venv" in quickstart
    assert "pytest" in tests and "python3 -m venv" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = _commands()
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [tests]

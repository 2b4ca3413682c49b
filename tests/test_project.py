"""The project's own files agree with each other: the README's commands, CI, conda."""

from __future__ import annotations

import tomllib

import yaml  # type: ignore[import-untyped]

from dbkit.settings import PROJECT_ROOT


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # conda users get this package with the same extras as `make install` (lab, dev)
    assert pip == ["-e .[lab,dev]"]
    assert set(project["optional-dependencies"]) == {"lab", "dev"}


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    first_lines = (PROJECT_ROOT / "README.md").read_text().splitlines()[:15]
    assert any("make lab" in line for line in first_lines)
    assert any("make test" in line for line in first_lines)
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci

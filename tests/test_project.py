"""The project's own files agree with each other: the README's commands, CI, conda."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
import yaml  # type: ignore[import-untyped]

from dbkit.settings import PROJECT_ROOT
from tools import course


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    # one version, `python=X.Y` (the form repo2docker reads), and one the course supports
    pinned = python.removeprefix("python=")
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, pinned.split("."))) >= tuple(map(int, minimum.split("."))), python
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # conda users get this package with the extras a learner needs (lab, dev); not `hub`:
    # a JupyterHub of our version would replace the one Binder's own hub talks to
    assert pip == ["-e .[lab,dev]"]
    assert set(project["optional-dependencies"]) == {"lab", "dev", "hub"}


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    first_lines = (PROJECT_ROOT / "README.md").read_text().splitlines()[:15]
    assert any("make lab" in line for line in first_lines)
    assert any("make test" in line for line in first_lines)
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_the_readme_table_and_the_notebooks_links_are_generated_and_current() -> None:
    stale = [p.name for p, text in course.wanted().items() if p.read_text() != text]
    assert not stale, f"run `make toc`: {stale}"


def test_a_changed_title_makes_the_table_and_links_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(
        PROJECT_ROOT / "notebooks", tmp_path / "notebooks", ignore=lambda *_: ["student"]
    )
    for name in ("README.md", "INSTRUCTORS.md"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    english = replace(course.ENGLISH, folder=tmp_path / "notebooks", readme=tmp_path / "README.md")
    monkeypatch.setattr(course, "EDITIONS", (english,))
    monkeypatch.setattr(course, "INSTRUCTORS", tmp_path / "INSTRUCTORS.md")
    nb05 = tmp_path / "notebooks" / "05_sessions.ipynb"
    nb = nbformat.read(nb05, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("The session factory", "Sessions", 1)
    nbformat.write(nb, nb05)
    stale = sorted(p.name for p, text in course.wanted().items() if p.read_text() != text)
    assert stale == ["04_async_engine.ipynb", "06_scoped_session.ipynb", "README.md"]
    assert "[Sessions](notebooks/05_sessions.ipynb)" in course.wanted()[tmp_path / "README.md"]


def test_every_notebook_has_the_same_recap_exercise_and_clean_up_headings() -> None:
    for path in sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        headings = [
            line
            for cell in nb.cells
            if cell.cell_type == "markdown"
            for line in cell.source.splitlines()
            if line.startswith("## ")
        ]
        assert "## Recap" in headings and "## Exercise" in headings, path.name
        odd = [h for h in headings if "clean" in h.lower() and h != "## Clean up"]
        assert not odd, f"{path.name}: the clean-up heading is '## Clean up', not {odd}"

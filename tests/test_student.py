"""The learner copies (notebooks/student/): generated from the solved notebooks, kept in
step with them, and really failing where the learner has work to do (and only there)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tools.student import (
    BEGIN,
    END,
    SOLVED,
    STUDENT,
    differences,
    expected,
    strip_solutions,
    student_copy,
)


def test_solutions_become_placeholders_that_raise() -> None:
    source = f"x = 1\n{BEGIN}\ny = 2\n{END}\ndef f():\n    {BEGIN}\n    return 3\n    {END}\n"
    assert strip_solutions(source) == (
        "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()\n"
        "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )
    with pytest.raises(ValueError, match="unbalanced"):
        strip_solutions(f"{BEGIN}\ny = 2\n")


def test_a_learner_copy_names_its_own_database_in_code_and_prose() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell('`fresh_database("nb05")` makes `dbkit_<you>_nb05`.'),
        nbformat.v4.new_code_cell('url = await fresh_database("nb05")'),
    ]
    prose, code = (c.source for c in student_copy(nb).cells)
    assert prose == '`fresh_database("nb05_student")` makes `dbkit_<you>_nb05_student`.'
    assert code == 'url = await fresh_database("nb05_student")'


def test_student_copies_are_up_to_date() -> None:
    want = expected()
    assert want, "no solved notebooks found"
    stale, extra = differences(want)
    assert not stale and not extra, (
        f"run `make student`: stale {[p.name for p in stale]}, extra {[p.name for p in extra]}"
    )


def exercise_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "raise NotImplementedError()" in c.source]


def test_every_solved_notebook_has_an_exercise() -> None:
    for path in sorted(SOLVED.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert any(BEGIN in c.source for c in nb.cells if c.cell_type == "code"), path.name


# the English learner copies; the Korean ones have the same code cells (tests/test_korean.py)
@pytest.mark.parametrize(
    "path", sorted(p for p in expected() if p.parent == STUDENT), ids=lambda p: p.stem
)
def test_learner_copy_fails_at_its_exercises_and_only_there(path: Path) -> None:
    # the copy as generated, not the file on disk: a learner may have solved that one
    nb = nbformat.reads(expected()[path], as_version=4)
    exercises = exercise_cells(nb)
    assert exercises, f"{path.name} has no exercise"
    NotebookClient(
        nb,
        timeout=300,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    failed = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)
    ]
    before = [i for i in failed if i < exercises[0]]
    assert not before, f"cells {before} fail before the first exercise"
    # each exercise fails: in its own cell (a placeholder at the top level) or, when the
    # placeholder sits inside a function the learner writes, in the check that calls it
    for i in exercises:
        assert any(j >= i for j in failed), f"nothing fails at or after exercise cell {i}"


# --- a learner's work is never lost --------------------------------------------------


def project_copy(tmp_path: Path) -> Path:
    """The notebooks and tools/ in a git repository of their own, committed, as a learner's
    clone is: the tests below edit it freely."""
    root = tmp_path / "course clone"
    shutil.copytree(SOLVED, root / "notebooks", ignore=shutil.ignore_patterns("kept", ".*"))
    shutil.copytree(SOLVED.parent / "tools", root / "tools", ignore=shutil.ignore_patterns("__*"))
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "as shipped"]):
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
        subprocess.run(git, cwd=root, check=True, capture_output=True)
    return root


def solve(path: Path) -> None:
    """Do what a learner does: replace the placeholders with a solution and run cells."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "raise NotImplementedError()" in cell.source:
            cell.source = cell.source.replace("raise NotImplementedError()", "solved = True")
            cell.execution_count = 1
    nbformat.write(nb, path)


def student(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.student", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_solved_learner_copy_is_not_out_of_date(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    solve(root / "notebooks" / "student" / "05_sessions.ipynb")
    check = student(root, "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_make_student_keeps_a_solved_copy_before_it_writes(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    mine = root / "notebooks" / "student" / "05_sessions.ipynb"
    solve(mine)
    solved = mine.read_text()
    (root / "notebooks" / "student" / "my notes.ipynb").write_text(solved)  # the learner's own
    # the course changes the solved notebook: the learner copy must be regenerated
    nb05 = root / "notebooks" / "05_sessions.ipynb"
    nb = nbformat.read(nb05, as_version=4)
    nb.cells[0].source += "\n\nA sentence the course added."
    nbformat.write(nb, nb05)
    done = student(root)
    assert done.returncode == 0, done.stderr
    kept = list((root / "notebooks" / "student" / "kept").glob("05_sessions-*.ipynb"))
    assert len(kept) == 1 and kept[0].read_text() == solved, done.stdout
    assert (
        f"kept your work: notebooks/student/05_sessions.ipynb -> {kept[0].relative_to(root)}"
        in (done.stdout)
    )
    assert "A sentence the course added." in mine.read_text()
    assert (root / "notebooks" / "student" / "my notes.ipynb").read_text() == solved

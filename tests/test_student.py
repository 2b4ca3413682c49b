"""The learner copies (notebooks/student/): generated from the solved notebooks, kept in
step with them, and really failing where the learner has work to do (and only there)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tools.student import BEGIN, END, SOLVED, STUDENT, differences, expected, strip_solutions


def test_solutions_become_placeholders_that_raise() -> None:
    source = f"x = 1\n{BEGIN}\ny = 2\n{END}\ndef f():\n    {BEGIN}\n    return 3\n    {END}\n"
    assert strip_solutions(source) == (
        "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()\n"
        "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )
    with pytest.raises(ValueError, match="unbalanced"):
        strip_solutions(f"{BEGIN}\ny = 2\n")


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


@pytest.mark.parametrize("path", sorted(STUDENT.glob("*.ipynb")), ids=lambda p: p.stem)
def test_learner_copy_fails_at_its_exercises_and_only_there(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
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

"""Generate the learner copies: notebooks/NN_*.ipynb -> notebooks/student/NN_*.ipynb.

In the solved notebooks an exercise's solution sits between a `### BEGIN SOLUTION` line
and a `### END SOLUTION` line. The learner copy keeps everything else as it is and
replaces each such block with `# YOUR CODE HERE` and `raise NotImplementedError()`
(indented like the markers), clears every output, and gives each notebook a database
of its own (`fresh_database("nb05")` becomes `fresh_database("nb05_student")`), so a
solved notebook and its learner copy can run side by side.

    python -m tools.student          # write notebooks/student/
    python -m tools.student --check  # exit 1 if notebooks/student/ is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLVED = ROOT / "notebooks"
STUDENT = SOLVED / "student"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION = re.compile(rf"^([ \t]*){BEGIN}[^\n]*\n.*?^[ \t]*{END}[^\n]*$", re.M | re.S)


def strip_solutions(source: str) -> str:
    """Replace every solution block with a placeholder that raises."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in:\n{source}")
    return SOLUTION.sub(
        lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()", source
    )


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    copy = nbformat.from_dict(nb)
    for cell in copy.cells:
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.source = re.sub(
            r'fresh_database\("(nb\d+)"', r'fresh_database("\1_student"', cell.source
        )
        cell.outputs = []
        cell.execution_count = None
    return copy


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected() -> dict[Path, str]:
    """Each learner copy as it should be on disk."""
    return {
        STUDENT / path.name: render(student_copy(nbformat.read(path, as_version=4)))
        for path in sorted(SOLVED.glob("[0-9][0-9]_*.ipynb"))
    }


def differences(want: dict[Path, str]) -> tuple[list[Path], list[Path]]:
    """(learner copies missing or out of date, learner copies with no solved notebook)."""
    stale = [p for p, text in want.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in STUDENT.glob("*.ipynb") if p not in want]
    return stale, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    want = expected()
    stale, extra = differences(want)
    if args.check:
        for p in stale + extra:
            print(f"out of date: {p.relative_to(ROOT)} (run `make student`)")
        return 1 if stale or extra else 0
    STUDENT.mkdir(exist_ok=True)
    for p in stale:
        p.write_text(want[p])
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate the learner copies: notebooks/NN_*.ipynb -> notebooks/student/NN_*.ipynb, and
the Korean edition's the same way: notebooks/ko/NN_*.ipynb -> notebooks/ko/student/.

In the solved notebooks an exercise's solution sits between a `### BEGIN SOLUTION` line
and a `### END SOLUTION` line. The learner copy keeps everything else as it is and
replaces each such block with `# YOUR CODE HERE` and `raise NotImplementedError()`
(indented like the markers), clears every output, and gives each notebook a database
of its own (`fresh_database("nb05")` becomes `fresh_database("nb05_student")`, in the
code and in the prose, where `dbkit_<you>_nb05` becomes `dbkit_<you>_nb05_student`), so a
solved notebook and its learner copy can run side by side.

Learners work in notebooks/student/. A learner copy that differs from the one committed
in git is the learner's work: `--check` does not count it as out of date (it checks the
committed copy instead), and writing never overwrites it without first keeping it in
notebooks/student/kept/ and saying so.

    python -m tools.student          # write notebooks/student/
    python -m tools.student --check  # exit 1 if notebooks/student/ is out of date
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from tools.course import numbered

ROOT = Path(__file__).resolve().parent.parent
SOLVED = ROOT / "notebooks"
STUDENT = SOLVED / "student"
# each edition's solved notebooks, and the folder of their learner copies
EDITIONS = ((SOLVED, STUDENT), (SOLVED / "ko", SOLVED / "ko" / "student"))
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION = re.compile(rf"^([ \t]*){BEGIN}[^\n]*\n.*?^[ \t]*{END}[^\n]*$", re.M | re.S)


def strip_solutions(source: str) -> str:
    """Replace every solution block with a placeholder that raises."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in:\n{source}")
    return SOLUTION.sub(
        lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()", source
    )


def own_database(source: str) -> str:
    """The learner copy's database: nb05 -> nb05_student, as code and as prose name it."""
    source = re.sub(r'fresh_database\("(nb\d+)"', r'fresh_database("\1_student"', source)
    return re.sub(r"\b(dbkit_<you>_nb\d+)\b", r"\1_student", source)


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    copy = nbformat.from_dict(nb)
    for cell in copy.cells:
        cell.source = own_database(cell.source)
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
    return copy


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected() -> dict[Path, str]:
    """Each learner copy as it should be on disk."""
    return {
        student / path.name: render(student_copy(nbformat.read(path, as_version=4)))
        for solved, student in EDITIONS
        for path in numbered(solved)
    }


def committed(path: Path) -> str | None:
    """The file as git has it committed (HEAD), or None (not tracked, or no git)."""
    try:
        done = subprocess.run(
            ["git", "show", f"HEAD:./{path.relative_to(ROOT).as_posix()}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def learners_work(path: Path) -> bool:
    """Did somebody change this learner copy since it was committed? Then it is a
    learner's work. A copy git has never shipped (a notebook being written) is not; outside
    git, any copy on disk counts as a learner's."""
    if not path.exists():
        return False
    shipped = committed(path)
    if shipped is None:
        return not _in_git()
    return path.read_text() != shipped


def _in_git() -> bool:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


def differences(want: dict[Path, str]) -> tuple[list[Path], list[Path]]:
    """(learner copies missing or out of date, learner copies with no solved notebook).
    A learner's edited copy is judged by its committed version, which is what ships."""
    stale = []
    for p, text in want.items():
        if p.exists() and p.read_text() == text:
            continue
        if learners_work(p) and committed(p) == text:
            continue  # the learner's work; what git ships is up to date
        stale.append(p)
    # a shipped copy whose solved notebook is gone; a learner's own new notebook is theirs
    extra = [
        p
        for _, student in EDITIONS
        for p in student.glob("*.ipynb")
        if p not in want and committed(p) is not None
    ]
    return stale, extra


def keep(path: Path) -> Path:
    """Copy a learner's work to kept/NAME-<time>.ipynb beside it (notebooks/student/kept/)."""
    folder = path.parent / "kept"
    folder.mkdir(exist_ok=True)
    kept = folder / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"
    kept.write_bytes(path.read_bytes())
    return kept


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
    for _, student in EDITIONS:
        student.mkdir(exist_ok=True, parents=True)
    for p in stale + extra:
        if learners_work(p):
            print(f"kept your work: {p.relative_to(ROOT)} -> {keep(p).relative_to(ROOT)}")
    for p in stale:
        p.write_text(want[p])
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

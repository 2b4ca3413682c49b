"""The course's table of contents, generated from the notebooks themselves.

* Each notebook's title is its first heading (`# 05 · The session factory`); what it
  teaches is `metadata.course.teaches` in the notebook; its minutes (teaching + exercise)
  are the schedule's in INSTRUCTORS.md.
* The README's notebook table (between `<!-- notebooks -->` and `<!-- /notebooks -->`) and
  the last cell of each notebook (previous / next) are written from those.
* The Korean edition the same way: notebooks/ko/ (titles and `teaches` in Korean, the
  minutes the same) into README.ko.md's table and the Korean notebooks' last cells.

    python -m tools.course           # write them
    python -m tools.course --check   # exit 1, naming what is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
INSTRUCTORS = ROOT / "INSTRUCTORS.md"
START, END = "<!-- notebooks -->", "<!-- /notebooks -->"
NAV = "<!-- nav: written by `make toc`; edit the titles, not this cell -->"


@dataclass(frozen=True)
class Edition:
    """One language of the course: its notebooks, its README, its words for the links."""

    folder: Path
    readme: Path
    header: str
    previous: str
    next: str


ENGLISH = Edition(
    NOTEBOOKS,
    README,
    "| # | notebook | what it teaches | min |",
    "← previous",
    "next",
)
KOREAN = Edition(
    NOTEBOOKS / "ko",
    ROOT / "README.ko.md",
    "| # | 노트북 | 배우는 것 | 분 |",
    "← 이전",
    "다음",
)
EDITIONS = (ENGLISH, KOREAN)


@dataclass(frozen=True)
class Entry:
    number: str
    title: str
    teaches: str
    minutes: int
    path: Path


def title_of(nb: nbformat.NotebookNode, path: Path) -> str:
    first = nb.cells[0].source.splitlines()[0] if nb.cells else ""
    match = re.fullmatch(r"# (\d\d) · (.+)", first)
    if not match or match[1] != path.name[:2]:
        raise SystemExit(f"{path.name}: the first cell must start with '# {path.name[:2]} · Title'")
    return match[2]


def schedule() -> dict[str, tuple[int, int]]:
    """Notebook number -> (teaching, exercise) minutes, from INSTRUCTORS.md's schedule."""
    rows = re.findall(r"^\| (\d\d) \| [^|]+ \| (\d+) \| (\d+) \|", INSTRUCTORS.read_text(), re.M)
    return {number: (int(teach), int(exercise)) for number, teach, exercise in rows}


def numbered(folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered notebooks in `folder` (NN_name.ipynb), in order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def find(number: str, folder: Path = NOTEBOOKS) -> Path:
    """The notebook numbered `number` (4 or 04) in `folder`."""
    found = [p for p in numbered(folder) if p.name[:2] == f"{int(number):02d}"]
    if len(found) != 1:
        raise SystemExit(f"no single notebook numbered {number} in {folder}")
    return found[0]


def entries(edition: Edition = ENGLISH) -> list[Entry]:
    minutes = schedule()
    found = []
    for path in numbered(edition.folder):
        nb = nbformat.read(path, as_version=4)
        teaches = nb.metadata.get("course", {}).get("teaches")
        if not teaches:
            raise SystemExit(f"{path.name}: set metadata.course.teaches")
        if path.name[:2] not in minutes:
            raise SystemExit(f"{path.name}: no row for it in INSTRUCTORS.md's schedule")
        number = path.name[:2]
        found.append(Entry(number, title_of(nb, path), teaches, sum(minutes[number]), path))
    return found


def table(course: list[Entry], edition: Edition = ENGLISH) -> str:
    folder = edition.folder.relative_to(edition.readme.parent).as_posix()
    rows = [
        f"| {e.number} | [{e.title}]({folder}/{e.path.name}) | {e.teaches} | {e.minutes} |"
        for e in course
    ]
    return "\n".join([edition.header, "|---|---|---|---|", *rows])


def nav(course: list[Entry], i: int, edition: Edition = ENGLISH) -> str:
    parts = []
    if i > 0:
        before = course[i - 1]
        parts.append(f"{edition.previous}: [{before.number} · {before.title}]({before.path.name})")
    if i + 1 < len(course):
        after = course[i + 1]
        parts.append(f"{edition.next}: [{after.number} · {after.title}]({after.path.name}) →")
    return f"{NAV}\n{' · '.join(parts)}"


def with_nav(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    if nb.cells and nb.cells[-1].cell_type == "markdown" and nb.cells[-1].source.startswith(NAV):
        nb.cells[-1].source = text
        nb.cells[-1].id = "nav"  # the Korean edition knows it by this id
    else:
        cell = nbformat.v4.new_markdown_cell(text)
        cell.id = "nav"
        nb.cells.append(cell)
    return nb


def wanted() -> dict[Path, str]:
    """Every file this writes, as it should be, in each language."""
    files = {}
    for edition in EDITIONS:
        course = entries(edition)
        if not course:
            continue
        readme = edition.readme.read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"{edition.readme.name} needs the markers {START} and {END}")
        head, rest = readme.split(START, 1)
        new = f"{head}{START}\n{table(course, edition)}\n{END}{rest.split(END, 1)[1]}"
        files[edition.readme] = new
        for i, e in enumerate(course):
            nb = with_nav(nbformat.read(e.path, as_version=4), nav(course, i, edition))
            files[e.path] = nbformat.writes(nb) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    stale = [(p, text) for p, text in wanted().items() if p.read_text() != text]
    for path, text in stale:
        if args.check:
            print(f"out of date: {path.relative_to(ROOT)} (run `make toc`)")
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

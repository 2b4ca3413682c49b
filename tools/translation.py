"""The Korean edition (notebooks/ko/), kept in step with the English notebooks.

A Korean notebook has the English one's cells, in the same order, with the same ids:

* its code cells are the English ones, byte for byte, outputs included (`sync` copies
  them, and tests/test_korean.py checks it), so nbval checks the same outputs;
* each prose (markdown) cell is Korean, and records in `metadata.translation.en` which
  revision of the English cell it translates: the first 12 hex digits of the SHA-256 of
  the English cell's source. When the English cell changes, the hash no longer matches and
  the cell is listed as needing re-translation (`status`; the test fails the same way);
* the last cell (previous / next) and README.ko.md's table are written by `make toc`.

    python -m tools.translation status        # what needs (re-)translation, and any term
                                              # used against the glossary; exit 1 if any
    python -m tools.translation sync          # copy code cells, add new English prose cells
    python -m tools.translation extract 05    # notebook 05's prose, as a file to translate
    python -m tools.translation apply 05 F    # put that file, translated, back

`extract` writes each prose cell after a line `<!-- cell ID en HASH -->` (the Korean text
when there is one, else the English), with the English text of a stale cell beside it.
`apply` puts each block back and records the HASH its line names: the English revision
the translator had in front of them. The terms are fixed in notebooks/ko/glossary.md.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools.course import find, numbered

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = ROOT / "notebooks"
KOREAN = ENGLISH / "ko"
GLOSSARY = KOREAN / "glossary.md"
NAV_ID = "nav"  # the previous / next cell: written by tools/course.py in each language
MARK = re.compile(r"^<!-- cell (\S+) en (\S+) -->$", re.M)
ENGLISH_BESIDE = re.compile(r"\n?<!-- english, as it is now:\n.*?\n-->\n?", re.S)


def fingerprint(source: str) -> str:
    """The revision of an English prose cell that a translation records."""
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def korean_path(english: Path) -> Path:
    return KOREAN / english.name


def is_prose(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "markdown" and cell.get("id") != NAV_ID


def recorded(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("translation", {}).get("en")


@dataclass(frozen=True)
class Stale:
    """A Korean prose cell that does not translate the English cell as it is now."""

    notebook: str
    cell: str
    why: str
    english: str

    def __str__(self) -> str:
        first = self.english.strip().splitlines()[0] if self.english.strip() else ""
        return f"{self.notebook} cell {self.cell}: {self.why}: {first[:70]}"


def stale_cells(english: Path, korean: Path | None = None) -> list[Stale]:
    """Every prose cell of the Korean edition of `english` that needs (re-)translation."""
    korean = korean or korean_path(english)
    en = nbformat.read(english, as_version=4)
    if not korean.exists():
        return [Stale(korean.name, "-", "no Korean edition", en.cells[0].source)]
    ko = {c.get("id"): c for c in nbformat.read(korean, as_version=4).cells}
    found = []
    for cell in filter(is_prose, en.cells):
        mine = ko.get(cell.id)
        if mine is None or mine.cell_type != "markdown":
            why = "new in English, not in the Korean"
        elif recorded(mine) is None:
            why = "not translated yet"
        elif recorded(mine) != fingerprint(cell.source):
            why = "the English changed since it was translated"
        else:
            continue
        found.append(Stale(korean.name, cell.id, why, cell.source))
    return found


def synced(english: Path, korean: Path) -> nbformat.NotebookNode:
    """The Korean notebook with the English code cells (and outputs), the Korean prose kept,
    English prose cells it lacks added in English (untranslated), and cells gone from the
    English gone from it."""
    en = nbformat.read(english, as_version=4)
    ko = nbformat.read(korean, as_version=4) if korean.exists() else None
    theirs = {c.get("id"): c for c in ko.cells} if ko else {}
    out = nbformat.from_dict(en)
    cells = []
    for cell in en.cells:
        mine = theirs.get(cell.id)
        if cell.cell_type == "markdown" and mine is not None and mine.cell_type == "markdown":
            cells.append(mine)
        elif cell.cell_type == "markdown":
            new = nbformat.from_dict(cell)
            new.metadata["translation"] = {"en": None}
            cells.append(new)
        else:
            cells.append(nbformat.from_dict(cell))
    out.cells = cells
    course = dict(en.metadata.get("course", {}))
    if ko is not None and ko.metadata.get("course", {}).get("teaches"):
        course["teaches"] = ko.metadata["course"]["teaches"]
    out.metadata["course"] = course
    return out


def extract(english: Path) -> str:
    en = nbformat.read(english, as_version=4)
    korean = synced(english, korean_path(english))
    ko = {c.get("id"): c for c in korean.cells}
    blocks = [f"<!-- teaches -->\n{korean.metadata['course']['teaches']}\n"]
    for cell in filter(is_prose, en.cells):
        mine = ko[cell.id]
        text = mine.source
        if recorded(mine) not in (None, fingerprint(cell.source)):
            text += f"\n<!-- english, as it is now:\n{cell.source}\n-->"
        blocks.append(f"<!-- cell {cell.id} en {fingerprint(cell.source)} -->\n{text}\n")
    return "\n".join(blocks)


def apply(english: Path, text: str) -> nbformat.NotebookNode:
    korean = korean_path(english)
    nb = synced(english, korean)
    head, _, body = text.partition("<!-- cell ")
    if head.startswith("<!-- teaches -->"):
        nb.metadata["course"]["teaches"] = head.removeprefix("<!-- teaches -->").strip()
    parts = MARK.split("<!-- cell " + body)
    cells = {c.get("id"): c for c in nb.cells}
    for cell_id, revision, source in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        cell = cells.get(cell_id)
        if cell is None or not is_prose(cell):
            raise SystemExit(f"{english.name}: no prose cell {cell_id} in the English")
        cell.source = ENGLISH_BESIDE.sub("", source).strip("\n")
        cell.metadata["translation"] = {"en": revision}
    return nb


@dataclass(frozen=True)
class Term:
    english: str
    korean: str
    avoid: tuple[str, ...]


def glossary(path: Path = GLOSSARY) -> list[Term]:
    """The glossary's table: | English | 한국어 | 쓰지 않는 말 (comma-separated) |."""
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| ([^|]*?) \|$", path.read_text(), re.M)
    return [
        Term(en, ko, tuple(w.strip() for w in avoid.split(",") if w.strip()))
        for en, ko, avoid in rows
        if en != "English" and not set(en) <= set("-")
    ]


def misused(text: str, terms: list[Term]) -> list[str]:
    """Each word of the glossary's third column that `text` uses, as 'X (write Y)'. A word
    counts where a word starts (not after another Hangul syllable), so the avoided 록 does
    not match inside 목록 or 블록, and 잠금 matches in 잠금을."""
    found = []
    for term in terms:
        for word in term.avoid:
            if re.search(rf"(?<![가-힣]){re.escape(word)}", text):
                found.append(f"{word!r} (the glossary says {term.korean!r} for {term.english!r})")
    return found


def korean_texts() -> dict[str, str]:
    """Every Korean text the glossary binds, by where it is: 'NN_x.ipynb cell ID', or a file."""
    texts = {}
    for path in numbered(KOREAN):
        nb = nbformat.read(path, as_version=4)
        texts[f"{path.name} teaches"] = nb.metadata.get("course", {}).get("teaches", "")
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                texts[f"{path.name} cell {cell.id}"] = cell.source
    for name in ("README.ko.md", "INSTRUCTORS.ko.md"):
        if (ROOT / name).exists():
            texts[name] = (ROOT / name).read_text()
    return texts


def term_problems() -> list[str]:
    terms = glossary()
    return [f"{where}: {m}" for where, text in korean_texts().items() for m in misused(text, terms)]


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="list what needs (re-)translation")
    commands.add_parser("sync", help="bring notebooks/ko/ in step with the English code")
    commands.add_parser("extract", help="a notebook's prose, to translate").add_argument("nb")
    applying = commands.add_parser("apply", help="put translated prose back")
    applying.add_argument("nb")
    applying.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "status":
        stale = [s for path in numbered(ENGLISH) for s in stale_cells(path)]
        for s in stale:
            print(s)
        terms = term_problems()
        for line in terms:
            print(line)
        print(f"{len(stale)} prose cells need translation; {len(terms)} terms against the glossary")
        return 1 if stale or terms else 0
    if args.command == "sync":
        for path in numbered(ENGLISH):
            write(synced(path, korean_path(path)), korean_path(path))
        print(f"synced {len(numbered(ENGLISH))} notebooks in {KOREAN.relative_to(ROOT)}")
        return 0
    if args.command == "extract":
        sys.stdout.write(extract(find(args.nb)))
        return 0
    english = find(args.nb)
    write(apply(english, args.file.read_text()), korean_path(english))
    print(f"wrote {korean_path(english).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Korean edition (notebooks/ko/) is the English course, kept in step.

* every English numbered notebook has a Korean edition with the same cells: its code cells
  and their outputs are the English ones, byte for byte, so nbval checks them alike;
* every prose cell is Korean, and records the revision of the English cell it translates:
  when an English cell changes, the test names the Korean cell to re-translate
  (`python -m tools.translation status` lists them all);
* the glossary's terms are used one way; headings are the glossary's; links resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from dbkit.settings import PROJECT_ROOT
from tools import translation
from tools.course import numbered
from tools.translation import ENGLISH, KOREAN, NAV_ID, fingerprint, stale_cells

ENGLISH_NOTEBOOKS = numbered(ENGLISH)
HANGUL = re.compile("[가-힣]")
HEADINGS = {"## Setup": "## 준비", "## Exercise": "## 연습 문제", "## Recap": "## 정리"}
HEADINGS["## Clean up"] = "## 뒷정리"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def pair(english: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    korean = KOREAN / english.name
    assert korean.exists(), f"no Korean edition of {english.name}: python -m tools.translation"
    return read(english), read(korean)


def test_every_english_notebook_and_no_other_has_a_korean_edition() -> None:
    assert [p.name for p in numbered(KOREAN)] == [p.name for p in ENGLISH_NOTEBOOKS]


@pytest.mark.parametrize("english", ENGLISH_NOTEBOOKS, ids=lambda p: p.name[:2])
def test_code_cells_and_outputs_are_the_english_ones(english: Path) -> None:
    en, ko = pair(english)
    assert [(c.id, c.cell_type) for c in ko.cells] == [(c.id, c.cell_type) for c in en.cells], (
        "the cells differ from the English: python -m tools.translation sync"
    )
    for mine, theirs in zip(ko.cells, en.cells, strict=True):
        if theirs.cell_type == "code":
            assert mine == theirs, f"code cell {theirs.id} differs: tools.translation sync"


@pytest.mark.parametrize("english", ENGLISH_NOTEBOOKS, ids=lambda p: p.name[:2])
def test_each_prose_cell_translates_the_english_as_it_is_now(english: Path) -> None:
    stale = stale_cells(english)
    assert not stale, "re-translate (python -m tools.translation extract/apply):\n" + "\n".join(
        map(str, stale)
    )


def test_one_changed_english_sentence_names_its_korean_cell(tmp_path: Path) -> None:
    """The drift check itself: change one sentence of one English cell, and exactly that
    cell is named, with why."""
    english = ENGLISH / "05_sessions.ipynb"
    nb = read(english)
    cell = next(c for c in nb.cells[1:] if c.cell_type == "markdown" and ". " in c.source)
    cell.source = cell.source.replace(". ", ". Also, ", 1)
    changed = tmp_path / english.name
    nbformat.write(nb, changed)
    assert [(s.cell, s.why) for s in stale_cells(changed, KOREAN / english.name)] == [
        (cell.id, "the English changed since it was translated")
    ]


@pytest.mark.parametrize("english", ENGLISH_NOTEBOOKS, ids=lambda p: p.name[:2])
def test_the_prose_is_korean_with_the_glossarys_headings(english: Path) -> None:
    en, ko = pair(english)
    assert HANGUL.search(ko.metadata["course"]["teaches"]), "metadata.course.teaches in Korean"
    title = re.fullmatch(r"# (\d\d) · (.+)", ko.cells[0].source.splitlines()[0])
    assert title and title[1] == english.name[:2], "the title keeps '# NN · '"
    for mine, theirs in zip(ko.cells, en.cells, strict=True):
        if theirs.cell_type != "markdown" or theirs.id == NAV_ID:
            continue
        assert HANGUL.search(mine.source), f"cell {mine.id} is not Korean"
        for heading, korean in HEADINGS.items():
            if re.search(rf"^{heading}$", theirs.source, re.M):
                assert re.search(rf"^{korean}$", mine.source, re.M), (
                    f"cell {mine.id}: the glossary's heading for '{heading}' is '{korean}'"
                )


def test_the_glossarys_terms_are_used_one_way() -> None:
    problems = translation.term_problems()
    assert not problems, "\n".join(problems)


def test_instructions_end_one_way() -> None:
    """The glossary's style: "-세요" to the learner, never "-십시오" beside it."""
    found = [where for where, text in translation.korean_texts().items() if "십시오" in text]
    assert not found, f"write -세요, not -십시오: {found}"


def test_the_term_check_flags_a_second_translation_and_only_that() -> None:
    terms = translation.glossary()
    assert len(terms) >= 30
    assert translation.misused("커넥션 풀을 쓰고, 다른 곳에서는 연결 풀을 씁니다.", terms)
    assert translation.misused("트랜젝션", terms)
    # a word to avoid inside a longer word is not that word: 록 (lock) in 목록, 블록, 프록시
    assert not translation.misused("목록과 블록, 프록시를 기록하도록 커넥션 풀을 씁니다.", terms)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def korean_files() -> dict[str, tuple[Path, str]]:
    """Every Korean text with links, by name: (the folder its links start from, the text)."""
    files = {
        f"{p.name} cell {c.id}": (KOREAN, c.source)
        for p in numbered(KOREAN)
        for c in read(p).cells
        if c.cell_type == "markdown"
    }
    for name in ("README.ko.md", "INSTRUCTORS.ko.md", "notebooks/ko/glossary.md"):
        files[name] = (PROJECT_ROOT / Path(name).parent, (PROJECT_ROOT / name).read_text())
    return files


def test_every_relative_link_of_the_korean_edition_resolves() -> None:
    broken = [
        f"{where}: {target}"
        for where, (folder, text) in korean_files().items()
        for target in LINK.findall(text)
        if "://" not in target and not target.startswith("mailto:")
        if not (folder / target).exists()
    ]
    assert not broken, "\n".join(broken)


def test_the_readmes_link_each_other() -> None:
    assert "(README.ko.md)" in (PROJECT_ROOT / "README.md").read_text()
    assert "(README.md)" in (PROJECT_ROOT / "README.ko.md").read_text()
    assert "(INSTRUCTORS.md)" in (PROJECT_ROOT / "INSTRUCTORS.ko.md").read_text()


def test_fingerprint_is_of_the_exact_source() -> None:
    assert fingerprint("a sentence.") != fingerprint("a sentence. ")

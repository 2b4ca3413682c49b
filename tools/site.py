"""`make site`: the course as a static site, built from the committed, executed notebooks.

Stages the sources in build/site-src/ (the README as the home page, INSTRUCTORS.md,
CONTRIBUTING.md, bench/README.md and the solved notebooks, each with a "Run it" box that
gives its minutes from INSTRUCTORS.md and the three ways to run it; and the Korean edition
under ko/: README.ko.md, INSTRUCTORS.ko.md, the glossary and notebooks/ko/, each page
with a link to the same page in the other language), then runs Sphinx
(site/conf.py) into build/site/ with warnings as errors, so a broken internal link fails
the build. Nothing is re-executed and nothing is downloaded.

    python -m tools.site            # build; prints the path of the home page
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat

from tools.course import ENGLISH, KOREAN, Edition, entries, schedule

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "build" / "site-src"
OUT = ROOT / "build" / "site"
# where the course is published: set COURSE_REPO when you build the site for your copy
REPO = os.environ.get("COURSE_REPO", "https://github.com/OWNER/REPO")
BINDER = f"https://mybinder.org/v2/gh/{REPO.removeprefix('https://github.com/')}/HEAD"


def pull(nb: str) -> str:
    return (
        "https://YOUR-HUB/hub/user-redirect/git-pull?"
        f"repo={REPO}&urlpath=lab/tree/{REPO.rsplit('/', 1)[1]}/{nb}"
    )


def run_it_ko(path: Path, minutes: tuple[int, int]) -> str:
    nb = f"notebooks/ko/{path.name}"
    return f""":::{{admonition}} 실행하기 · 강의 {minutes[0]}분 + 연습 문제 {minutes[1]}분
:class: tip

* **내 컴퓨터에서**: `git clone {REPO}` 다음에 `make lab`을 실행하고 `{nb}`를 엽니다
  (연습 문제를 직접 풀 실습용 사본: `notebooks/ko/student/{path.name}`).
* **Binder에서**: [이 노트북 실행하기]({BINDER}?urlpath=lab/tree/{nb}) (설치할 것이 없습니다.
  내장 PostgreSQL이 그 안에서 시작합니다).
* **워크숍의 JupyterHub에서**: 강사가 준 링크를 열거나, `YOUR-HUB`를 허브 주소로 바꾼
  `{pull(nb)}`을 엽니다(nbgitpuller).
:::
"""


def run_it(path: Path, minutes: tuple[int, int]) -> str:
    nb = f"notebooks/{path.name}"
    return f""":::{{admonition}} Run it · {minutes[0]} min teaching + {minutes[1]} min exercise
:class: tip

* **On your machine**: `git clone {REPO}`, then `make lab` and open `{nb}`
  (your own copy, with the exercise to do: `notebooks/student/{path.name}`).
* **On Binder**: [launch this notebook]({BINDER}?urlpath=lab/tree/{nb}) (no install; the
  embedded PostgreSQL starts inside it).
* **On your workshop's JupyterHub**: open the link your instructor gives you, or
  `{pull(nb)}` with `YOUR-HUB` replaced by the hub's address (nbgitpuller).
:::
"""


def stage_notebooks(
    edition: Edition, into: Path, box: Callable[[Path, tuple[int, int]], str], other: str
) -> list[str]:
    """One edition's notebooks, staged in `into`, each with its "Run it" box (`box`) and
    a link to the same page in the other language (`other`, with {name} for the file);
    returns the documents, in order."""
    into.mkdir(parents=True)
    minutes = schedule()
    docs = []
    for entry in entries(edition):
        nb = nbformat.read(entry.path, as_version=4)
        run = nbformat.v4.new_markdown_cell(box(entry.path, minutes[entry.number]))
        run.id = "run-it"
        language = nbformat.v4.new_markdown_cell(other.format(name=entry.path.name))
        language.id = "language"
        nb.cells[1:1] = [language, run]
        nbformat.write(nb, into / entry.path.name)
        docs.append(f"notebooks/{entry.path.stem}")
    return docs


def toctree(caption: str, docs: list[str]) -> str:
    return "\n".join(["", "```{toctree}", ":hidden:", f":caption: {caption}", "", *docs, "```", ""])


# README.ko.md and INSTRUCTORS.ko.md link the repository's paths; on the site the Korean
# pages sit under ko/, the English ones at the top
KOREAN_LINKS = {
    "](README.md)": "](../index.md)",
    "](INSTRUCTORS.md)": "](../INSTRUCTORS.md)",
    "](INSTRUCTORS.ko.md)": "](INSTRUCTORS.md)",
    "](notebooks/ko/glossary.md)": "](glossary.md)",
    "](notebooks/ko/": "](notebooks/",
    "](CONTRIBUTING.md)": "](../CONTRIBUTING.md)",
    "](bench/README.md)": "](../bench/README.md)",
}
ENGLISH_LINKS = {
    "](README.ko.md)": "](ko/index.md)",
    "](INSTRUCTORS.ko.md)": "](ko/INSTRUCTORS.md)",
}


def relinked(text: str, links: dict[str, str]) -> str:
    for old, new in links.items():
        text = text.replace(old, new)
    return text


def stage() -> list[str]:
    """Copy the sources into build/site-src; return the English notebook documents."""
    shutil.rmtree(SRC, ignore_errors=True)
    (SRC / "bench").mkdir(parents=True)
    docs = stage_notebooks(ENGLISH, SRC / "notebooks", run_it, "[한국어](../ko/notebooks/{name})")
    for name in ("INSTRUCTORS.md", "CONTRIBUTING.md", "bench/README.md"):
        (SRC / name).write_text(relinked((ROOT / name).read_text(), ENGLISH_LINKS))
    readme = relinked((ROOT / "README.md").read_text(), ENGLISH_LINKS)
    toc = toctree("The notebooks", docs) + toctree(
        "For instructors and contributors", ["INSTRUCTORS", "CONTRIBUTING", "bench/README"]
    )
    (SRC / "index.md").write_text(readme + toc + toctree("한국어", ["ko/index"]))
    korean = stage_notebooks(
        KOREAN, SRC / "ko" / "notebooks", run_it_ko, "[English](../../notebooks/{name})"
    )
    (SRC / "ko" / "INSTRUCTORS.md").write_text(
        relinked((ROOT / "INSTRUCTORS.ko.md").read_text(), KOREAN_LINKS)
    )
    shutil.copy(KOREAN.folder / "glossary.md", SRC / "ko" / "glossary.md")
    readme_ko = relinked((ROOT / "README.ko.md").read_text(), KOREAN_LINKS)
    (SRC / "ko" / "index.md").write_text(
        readme_ko + toctree("노트북", korean) + toctree("강사용", ["INSTRUCTORS", "glossary"])
    )
    shutil.copy(ROOT / "site" / "conf.py", SRC / "conf.py")
    return docs


def build() -> Path:
    stage()
    shutil.rmtree(OUT, ignore_errors=True)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-n"),
            *("-d", str(ROOT / "build" / "site-doctrees"), str(SRC), str(OUT)),
        ],
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit("the site did not build: see the warnings above")
    for page in (OUT / "ko").rglob("*.html"):  # Sphinx has one language per project
        html = page.read_text()
        page.write_text(html.replace('<html lang="en"', '<html lang="ko"', 1))
    return OUT / "index.html"


if __name__ == "__main__":
    print(f"built {build().relative_to(ROOT)}")

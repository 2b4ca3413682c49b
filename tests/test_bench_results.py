"""bench/results.json, the tables made from it, and the prose that quotes it agree.

Nothing here times anything: it reads the committed results and the documents. A ratio
("2.61x") written in the README, bench/README.md or notebook 11's prose must be one of
results.json's figures, unless its paragraph says it is one run's ("one run"); a goal
("≤ 2.5x") is not a measurement and is left alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from bench.layers import LAYERS
from bench.run import BEGIN_TABLE, DOCS, END_TABLE, HERE, goals, table

RESULTS = json.loads((HERE / "results.json").read_text())
NOTEBOOK = HERE.parent / "notebooks" / "11_what_a_request_costs.ipynb"
RATIO = re.compile(r"(?<![\w.≤])(\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))?x\b")
FIX = "run `make bench` (it rewrites the tables), or label the figure as one run's"


def generated_block(text: str) -> str:
    return text[text.index(BEGIN_TABLE) + len(BEGIN_TABLE) : text.index(END_TABLE)]


def prose(path: Path) -> str:
    """What a reader sees of `path` that `make bench` did not write."""
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = path.read_text()
    return text.replace(generated_block(text), "\n") if BEGIN_TABLE in text else text


def measured() -> set[str]:
    figures = set()
    for row in RESULTS["rows"]:
        for key in ("ratio", "ratio_min", "ratio_max", "cpu_ratio"):
            figures |= {f"{row[key]:.2f}", f"{row[key]:.1f}"}
    return figures


def test_results_have_one_row_per_layer_with_its_roles() -> None:
    rows = RESULTS["rows"]
    assert [r["key"] for r in rows] == [layer.key for layer in LAYERS], FIX
    for row, layer in zip(rows, LAYERS, strict=True):
        assert row["recommended"] == layer.recommended
        assert row["recommended_write"] == layer.recommended_write
        assert row["seed"] == layer.seed
    assert sum(r["recommended"] for r in rows) == sum(r["recommended_write"] for r in rows) == 1
    assert "load_average" in RESULTS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(HERE.parent)))
def test_the_table_shown_is_the_table_of_results_json(doc: Path) -> None:
    assert generated_block(doc.read_text()).strip() == table(RESULTS).strip(), f"{doc}: {FIX}"


@pytest.mark.parametrize("doc", [*DOCS, NOTEBOOK], ids=lambda p: str(p.relative_to(HERE.parent)))
def test_every_ratio_in_prose_comes_from_results_json_or_says_one_run(doc: Path) -> None:
    figures, stray = measured(), []
    for paragraph in re.split(r"\n\s*\n", prose(doc)):
        if "one run" in paragraph:
            continue
        for match in RATIO.finditer(paragraph):
            stray += [n for n in match.groups() if n and n not in figures]
    assert not stray, f"{doc.name}: ratios not in bench/results.json: {stray}; {FIX}"


def test_the_prose_check_catches_a_figure_typed_by_hand(tmp_path: Path) -> None:
    """The check above can fail: a paragraph quoting a ratio no run measured."""
    doc = tmp_path / "README.md"
    doc.write_text(f"{BEGIN_TABLE}\n{END_TABLE}\n\nThe seed is 7.77x slower.\n")
    assert RATIO.findall(prose(doc)) == [("7.77", "")]
    assert "7.77" not in measured()


def test_goals_are_reported_against_this_run_and_a_busy_run_says_so() -> None:
    rows = [line for line in goals(RESULTS) if line.startswith("| ")]
    assert len(rows) == 1 + 5  # header, one line per goal
    assert all(line.endswith(("| yes |", "| **no** |")) for line in rows[1:])
    busy = {**RESULTS, "load_average": {"before": [3.0, 2.0, 1.0], "after": [3.0, 2.0, 1.0]}}
    quiet = {**RESULTS, "load_average": {"before": [0.2, 0.2, 0.2], "after": [0.3, 0.2, 0.2]}}
    assert "not" in goals(busy)[-1] and "one busy run's" in goals(busy)[-1]
    assert goals(quiet)[-1].startswith("| ")

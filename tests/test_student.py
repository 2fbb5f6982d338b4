"""Student copies: solutions removed, outputs cleared, every notebook still valid."""
from pathlib import Path

import nbformat
import pytest

from medxai_lib.student import PROMPT, main, student_copy, write_student_copies

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _notebook_with_solution():
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("answer = 6 * 7  # SECRET-SOLUTION")
    solution.metadata["tags"] = ["solution"]
    solution.outputs = [nbformat.v4.new_output("stream", text="42")]
    story = nbformat.v4.new_code_cell("x = 1")
    story.outputs = [nbformat.v4.new_output("stream", text="1")]
    story.execution_count = 3
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), story, solution]
    return nb


def test_student_copy_empties_solutions_and_clears_outputs():
    original = _notebook_with_solution()
    copy, removed = student_copy(original)
    assert removed == 1
    assert copy.cells[2].source == PROMPT and "SECRET" not in nbformat.writes(copy)
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")
    assert copy.cells[1].source == "x = 1" and original.cells[2].source.startswith("answer")   # original untouched
    nbformat.validate(copy)


def test_the_suite_has_solutions_and_none_survive(tmp_path):
    counts = write_student_copies(NOTEBOOKS, tmp_path)
    assert set(counts) == {p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert sum(counts.values()) >= 2, "expected solution cells in the notebooks"
    for path in tmp_path.glob("*.ipynb"):
        copy = nbformat.read(path, as_version=4)
        nbformat.validate(copy)
        source = nbformat.read(NOTEBOOKS / path.name, as_version=4)
        for ours, theirs in zip(copy.cells, source.cells):
            if "solution" in theirs.metadata.get("tags", []):
                assert ours.source == (PROMPT if theirs.cell_type == "code" else "*Your answer here.*")
                assert theirs.source.strip() not in nbformat.writes(copy)
            assert ours.cell_type != "code" or ours.outputs == []


def test_student_cli_and_missing_source(tmp_path, capsys):
    assert main(["--src", str(NOTEBOOKS), "--out", str(tmp_path / "s")]) == 0
    assert "solution cell(s) removed" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="src"):
        write_student_copies(tmp_path / "nothing", tmp_path / "o")


def test_every_written_answer_is_a_solution_cell():
    """A markdown answer ("**Solution 2.** ...", "**Answer 1.** ...") that is not tagged would reach the students."""
    untagged = [(path.name, i) for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
                for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
                if cell.cell_type == "markdown" and cell.source.lstrip().startswith(("**Solution", "**Answer"))
                and "solution" not in cell.metadata.get("tags", [])]
    assert untagged == []

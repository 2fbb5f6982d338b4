"""Each notebook's first code cell says how to install the library when it is missing (a student opening a
notebook on a hosted service gets the install command, not a bare ImportError)."""
import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _first_code_cell(path: Path) -> str:
    return "".join(next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_code_cell_names_the_install_command(path, monkeypatch):
    source = _first_code_cell(path)
    monkeypatch.setitem(sys.modules, "medxai_lib", None)        # import medxai_lib now fails as if not installed
    with pytest.raises(ModuleNotFoundError, match=r"make install.*%pip install"):
        exec(compile(source, str(path), "exec"), {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_check_is_silent_when_the_library_is_installed(path, capsys):
    exec(compile(_first_code_cell(path), str(path), "exec"), {})
    assert capsys.readouterr().out == ""

"""environment.yml, requirements.lock and pyproject.toml agree on what gets installed."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_environment_yml_parses_and_matches_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "medxai" and "conda-forge" in env["channels"]
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    env_pins = _pins(pip_section)
    assert env_pins, "environment.yml pins nothing"
    for name, version in env_pins.items():
        assert lock.get(name) == version, f"environment.yml pins {name}=={version}, requirements.lock has {lock.get(name)}"
    assert "-c requirements.lock" in pip_section and any(d.startswith("-e .") for d in pip_section)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={python.split('=')[1]}"


def test_pyproject_pins_agree_with_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    pinned = _pins(declared)
    assert pinned == {"torch": "2.14.1", "torchvision": "0.29.1"}
    for name, version in pinned.items():
        assert lock[name] == version
    for requirement in declared:                      # every declared package is locked
        name = re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in lock, f"{name} is declared in pyproject.toml but missing from requirements.lock"

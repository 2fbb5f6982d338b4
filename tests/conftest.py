import os

import pytest
import torch

os.environ.setdefault("MEDXAI_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache dir and no record file."""
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDXAI_RECORD_FILE", raising=False)
    torch.manual_seed(0)

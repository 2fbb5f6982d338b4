"""DDP: two gloo processes on CPU train a few steps and end with identical parameters."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medxai_lib.distributed import init_from_environment
from medxai_lib.train import distributed_rank_and_size


def test_two_ranks_end_with_identical_weights(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun ships with torch"
    env = {**os.environ, "MEDXAI_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "medxai_lib.distributed",
                             "--recipe", "smoke", "--epochs", "2", "--out", str(tmp_path / "ddp")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys() and len(rank0) > 10
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    torch.manual_seed(0)
    from medxai_lib.models import densenet_small
    initial = dict(densenet_small(num_classes=1, in_channels=1).named_parameters())
    assert any(not torch.equal(initial[n].detach(), rank0[n]) for n in rank0)      # they did train


def test_outside_torchrun_is_single_process_and_init_says_how_to_start(monkeypatch):
    assert distributed_rank_and_size() == (0, 1)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_from_environment()

"""Runtime core: seeds, device, cache directory, progress bars and metric recording.

Everything a notebook needs to be reproducible and to report numbers to the papermill runner.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import numpy as np
import torch

T = TypeVar("T")

RECORD_FILE_ENV = "MEDXAI_RECORD_FILE"
CACHE_ENV = "MEDXAI_CACHE"
PROGRESS_ENV = "MEDXAI_PROGRESS"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_recorded: dict[str, float | int | str | bool] = {}
_progress_enabled: bool | None = None


MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def check_memory_format(name: str) -> str:
    """``name`` if it is one of :data:`MEMORY_FORMATS`, else a ``ValueError`` naming the choices."""
    if name not in MEMORY_FORMATS:
        raise ValueError(f"memory_format: expected one of {sorted(MEMORY_FORMATS)}, got {name!r}")
    return name


def in_memory_format(item: T, name: str) -> T:
    """A module's parameters and buffers, or a 4-D ``(B, C, H, W)`` tensor, in memory format ``name``
    (``"channels_last"`` trains the suite's conv nets 1.4-1.6x faster on a CPU: benchmarks/training_layout.py);
    other tensors are returned as they are. The values are unchanged, only their order in memory."""
    fmt = MEMORY_FORMATS[check_memory_format(name)]
    if isinstance(item, torch.nn.Module):
        return item.to(memory_format=fmt)
    if isinstance(item, torch.Tensor) and item.ndim == 4:
        return item.contiguous(memory_format=fmt)
    return item


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); ask torch for deterministic kernels.

    With ``deterministic=True`` torch raises if an op has no deterministic implementation
    (``warn_only`` is used so that such ops warn instead of failing a lesson).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda if available, else mps, else cpu; other strings are checked."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda[:i]' or 'mps', got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda[:i]' or 'mps', got {device!r}") from exc
    if resolved.type == "cpu":
        if resolved.index not in (None, 0):
            raise ValueError(f"device: {device!r} names a CPU index; there is one CPU device, use 'cpu'")
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device: {device!r} requested but this host has {torch.cuda.device_count()} CUDA "
                             f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return resolved
    if resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device: {device!r} requested but Apple's MPS backend is not available here; "
                             "use 'auto' or 'cpu'")
        return resolved
    raise ValueError(f"device: expected 'auto', 'cpu', 'cuda[:i]' or 'mps', got {device!r} "
                     f"(device type {resolved.type!r} is not supported by medxai)")


def cache_dir() -> Path:
    """Cache directory: ``$MEDXAI_CACHE`` (``~`` and ``$VARS`` expanded) or ``<repo>/data/cache``; created
    if missing. An unusable path raises ``ValueError`` naming the variable."""
    raw = os.environ.get(CACHE_ENV)
    path = Path(os.path.expandvars(os.path.expanduser(raw))) if raw else _REPO_ROOT / "data" / "cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        source = f"{CACHE_ENV}={raw!r}" if raw else f"the default cache {str(path)!r}"
        raise ValueError(f"{source}: cannot create or use this cache directory ({exc.strerror or exc}); "
                         f"point {CACHE_ENV} at a writable folder") from exc
    if not os.access(path, os.W_OK):
        source = f"{CACHE_ENV}={raw!r}" if raw else f"the default cache {str(path)!r}"
        raise ValueError(f"{source}: the cache directory is not writable; point {CACHE_ENV} at a writable folder")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"config: value {value!r} of type {type(value).__name__} cannot be hashed; "
                    "use str/int/float/bool/None, lists and dicts")


def config_hash(config: dict[str, Any], length: int = 16) -> str:
    """Stable hex hash of a JSON-able config (key order does not matter)."""
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    blob = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def set_progress(enabled: bool) -> None:
    """Switch all medxai progress bars on or off (default: on unless $MEDXAI_PROGRESS=0)."""
    global _progress_enabled
    _progress_enabled = bool(enabled)


def progress_enabled() -> bool:
    if _progress_enabled is not None:
        return _progress_enabled
    return os.environ.get(PROGRESS_ENV, "1") not in {"0", "false", "False", ""}


def progress(iterable: Iterable[T], enabled: bool | None = None, **kwargs: Any) -> Iterable[T]:
    """A ``tqdm.auto`` bar over ``iterable``, or the bare iterable when bars are off."""
    if enabled is None:
        enabled = progress_enabled()
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


def record(name: str, value: float | int | str | bool) -> float | int | str | bool:
    """Publish a metric for the papermill runner; returns ``value`` unchanged.

    The value is kept in memory (:func:`recorded`) and, when ``$MEDXAI_RECORD_FILE`` is set (the
    runner sets it per notebook), appended to that file as one JSON line ``{"name", "value"}``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"value: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, (float, int, str, bool)):
        raise TypeError(f"value: expected a number, string or bool, got {type(value).__name__}")
    if isinstance(value, float) and not np.isfinite(value):
        raise ValueError(f"value: metric {name!r} is not finite ({value})")
    _recorded[name] = value
    target = os.environ.get(RECORD_FILE_ENV)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": value}) + "\n")
    return value


def recorded() -> dict[str, float | int | str | bool]:
    """Metrics recorded in this process so far (name -> value)."""
    return dict(_recorded)


def read_records(path: str | Path) -> dict[str, float | int | str | bool]:
    """Read a record file written by :func:`record`; later values of a name win."""
    out: dict[str, float | int | str | bool] = {}
    path = Path(path)
    if not path.exists():
        return out
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            out[item["name"]] = item["value"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}:{line_no}: not a metric record: {line!r}") from exc
    return out


# ---- result cache: keyed by config, input tensors and the digest of the code that made them ----
_MAP_SOURCES = ("explain/*.py", "models/*.py", "evaluate/studies/scoreboard.py", "evaluate/metrics/*.py")


def library_digest(patterns: tuple[str, ...] = _MAP_SOURCES) -> str:
    """Short hash of the library source files that make and score maps (glob ``patterns`` under the
    package): part of every cache key below, so cached results are recomputed whenever that code changes."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """Short hash of tensors' shapes and bytes (e.g. the evaluation images) for a cache key."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def cached(name: str, key: dict[str, Any], compute: Callable[[], Any], enabled: bool = True) -> tuple[Any, bool]:
    """``compute()`` once per ``key`` (a JSON-able dict; the library digest is added): the result is pickled
    under ``cache_dir()/results/<name>-<hash>.pt`` and loaded on the next call. Returns ``(result, from_cache)``.
    ``enabled=False`` always computes (and stores nothing)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier-like string, got {name!r}")
    if not enabled:
        return compute(), False
    path = cache_dir() / "results" / f"{name}-{config_hash({**key, 'library': library_digest()})}.pt"
    if path.exists():
        return torch.load(path, weights_only=False), True
    result = compute()
    atomic_write(path, lambda tmp: torch.save(result, tmp))
    return result, False

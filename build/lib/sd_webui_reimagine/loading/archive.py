"""Zip-bomb checks for PyTorch ``.ckpt`` files (a zip archive: ``<name>/data.pkl`` plus the tensor storages).

``torch.save`` stores every entry uncompressed (``ZIP_STORED``, see ``torch/serialization.py`` and PyTorch's
``caffe2/serialize/inline_container.cc``), so a real checkpoint's entries take as much room inside the archive as
they declare. A deflated entry that inflates hundreds of times, or a pickle of many megabytes, is not a checkpoint:
both are refused from the zip directory alone (declared sizes), before anything is inflated, and reads are bounded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import ModelLoadError

MAX_PICKLE_BYTES = 64 * 1024 * 1024  # a checkpoint's data.pkl: ~0.1-2 MB for SD/SDXL (one record per tensor)
MAX_RATIO = 100  # inflated / stored size of a deflated entry


class ArchiveBombError(ModelLoadError):
    """A ``.ckpt`` whose zip directory declares more data than a checkpoint holds."""


def check_entries(archive: zipfile.ZipFile, path: Path) -> None:
    """Raise :class:`ArchiveBombError` when an entry of ``archive`` inflates more than :data:`MAX_RATIO` times or a
    pickle declares more than :data:`MAX_PICKLE_BYTES`; nothing is read but the directory."""
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ArchiveBombError(
                f"{path.name} is not a plain checkpoint: its entry {info.filename!r} would inflate from "
                f"{info.compress_size:,} to {info.file_size:,} bytes (a zip bomb?); it was not read ({path})"
            )
        if info.filename.endswith(".pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise ArchiveBombError(
                f"{path.name} is not a plain checkpoint: its pickle {info.filename!r} declares {info.file_size:,} "
                f"bytes (a checkpoint's is a few MB at most); it was not read ({path})"
            )


def check_file(path: str | Path) -> None:
    """:func:`check_entries` for a zip ``.ckpt`` on disk; a file that is not a zip is left alone."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            check_entries(archive, path)
    except zipfile.BadZipFile:
        return


def read_pickle(path: str | Path) -> bytes | None:
    """The bytes of a zip checkpoint's ``data.pkl`` (at most :data:`MAX_PICKLE_BYTES`, entries checked first);
    ``None`` when ``path`` is a zip without one. Raises ``zipfile.BadZipFile`` for a non-zip file and
    :class:`ArchiveBombError` for a bomb."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        check_entries(archive, path)
        names = [name for name in archive.namelist() if name.endswith("data.pkl")]
        if not names:
            return None
        with archive.open(names[0]) as entry:
            data = entry.read(MAX_PICKLE_BYTES + 1)  # bounded even if the directory lies about the size
    if len(data) > MAX_PICKLE_BYTES:
        raise ArchiveBombError(f"{path.name} is not a plain checkpoint: its pickle is over {MAX_PICKLE_BYTES:,} bytes")
    return data

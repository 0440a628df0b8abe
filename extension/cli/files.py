"""Output names and folders for the CLI: unique names per input, names the file system accepts, an ``--out`` that can
be written to, and write failures (disk full, read-only) as one-line errors."""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import ReimagineError
from ..outputs import remove_stale_temps

NAME_BYTES = 200  # of a stem: room for "-0000.png" and the atomic writer's ".<stem>-XXXX.png.tmp" under NAME_MAX 255


def short_stem(stem: str) -> str:
    """``stem`` as it is, or cut to :data:`NAME_BYTES` UTF-8 bytes plus a hash of the whole (still unique)."""
    if len(stem.encode("utf-8")) <= NAME_BYTES:
        return stem
    digest = hashlib.sha1(stem.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    cut = stem.encode("utf-8")[: NAME_BYTES - 11].decode("utf-8", "ignore")
    return f"{cut}-{digest}"


def unique_stems(inputs: Sequence[Path]) -> list[str]:
    """One output stem per input: its own stem, ``<stem>-<ext>`` where two inputs share a stem (``a.png``/``a.jpg``),
    shortened to a length every file system takes."""
    counts = Counter(path.stem for path in inputs)
    stems = [p.stem if counts[p.stem] == 1 else f"{p.stem}-{p.suffix.lstrip('.').lower()}" for p in inputs]
    return [short_stem(stem) for stem in stems]


def prepare_out(out: Path) -> None:
    """Create ``--out`` (with parents) and check that files can be written there; a one-line error otherwise. Temp
    files a killed run left there are removed (the resume rule then redoes their images)."""
    if out.exists() and not out.is_dir():
        raise ReimagineError(f"--out {out} is a file, not a folder: give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReimagineError(f"cannot create the output folder {out}: {error.strerror or error}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ReimagineError(f"the output folder {out} is not writable")
    remove_stale_temps(out)


def write_error(error: OSError) -> ReimagineError:
    """A one-line error for a failed write (disk full, read-only file system, name too long, ...)."""
    where = f" {error.filename}" if error.filename else ""
    return ReimagineError(f"cannot write{where}: {error.strerror or error}")


def report_skipped(path: Path | str, error: Exception) -> None:
    """One line on stderr naming an input that could not be used; the run goes on."""
    print(f"skipped {path}: {error}", file=sys.stderr)

"""``pipe.reimagine_info``: what a loaded pipeline is, for infotext ("Model", "Model hash") and the UI.

Hash choice: the WebUI's "Model hash" is the first 10 hex digits of the sha256 of the whole file. That costs seconds
per GB, so it is computed lazily — on first access of ``ModelInfo.hash`` — and remembered in a JSON cache keyed by
(path, size, mtime_ns) (``$REIMAGINE_CACHE_DIR/hashes.json``, default ``~/.cache/sd-webui-reimagine/hashes.json``).
Loading a model never hashes it. Folders and hub ids have no hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

_LOCK = threading.Lock()


def hash_cache_file() -> Path:
    """Where computed sha256 sums are remembered."""
    root = os.environ.get("REIMAGINE_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "sd-webui-reimagine"
    return base / "hashes.json"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Full sha256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of ``path``, from the JSON cache when size and mtime still match, else computed and stored."""
    p = Path(path).resolve()
    st = p.stat()
    key, stamp = str(p), [st.st_size, st.st_mtime_ns]
    cache_file = hash_cache_file()
    with _LOCK:
        cache = _read_cache(cache_file)
        hit = cache.get(key)
        if hit and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
            return hit["sha256"]
    digest = sha256_file(p)
    with _LOCK:
        cache = _read_cache(cache_file)
        cache[key] = {"stamp": stamp, "sha256": digest}
        _write_cache(cache_file, cache)
    return digest


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hashes-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cache, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a re-hash next time


@dataclass
class ModelInfo:
    """Identity of a loaded model: ``name`` (file stem / folder name / hub id), ``kind``, ``path``, ``source``."""

    name: str
    kind: str
    path: str
    source: str = "file"  # "file" | "folder" | "hub"
    _sha256: str | None = field(default=None, repr=False, compare=False)

    @property
    def sha256(self) -> str | None:
        """Full sha256 of the checkpoint file (lazy, cached); None for folders and hub ids."""
        if self.source != "file":
            return None
        if self._sha256 is None:
            self._sha256 = cached_sha256(self.path)
        return self._sha256

    @property
    def hash(self) -> str | None:
        """WebUI-style short hash (first 10 hex digits of the sha256), as in infotext "Model hash"."""
        digest = self.sha256
        return digest[:10] if digest else None

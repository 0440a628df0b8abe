"""One cache of loaded pipelines, keyed by role + file identity (path, size, mtime) + load options."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..device.precision import pick
from ._common import free_memory
from .detect import normalize_role
from .source import resolve_source

Loader = Callable[..., Any]


def _default_loader(role: str) -> Loader:
    from .sdxl import load_sdxl
    from .unclip import load_unclip

    if role == "unclip":
        return load_unclip
    return lambda source, **kw: load_sdxl(source, role=role, **kw)


def _norm_option(value: Any) -> Any:
    if isinstance(value, (str, os.PathLike)) and value and Path(value).exists():
        return str(Path(value).resolve())
    return None if value is None else str(value)


class ModelCache:
    """Keeps loaded pipelines and hands the same object back for the same model and options.

    ``get(role, source, **loader_kwargs)`` loads on a miss (``role``: "unclip", "refiner", "base"); a second request
    with the same file identity (resolved path, size, mtime_ns — or folder / hub id) and options performs no load.
    When a file changes on disk its stale entry is dropped. At most ``max_items`` pipelines are kept (least recently
    used dropped first; None = unlimited). ``unload``/``clear`` free memory (gc + CUDA cache).
    """

    def __init__(self, max_items: int | None = 2, loaders: dict[str, Loader] | None = None) -> None:
        self.max_items = max_items
        self._loaders = dict(loaders or {})
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0  # number of real loads performed (for tests and logs)

    def key(self, role: str, source: str | os.PathLike[str], **loader_kwargs: Any) -> tuple:
        """Cache key for a request (stat()s the file; raises ModelLoadError when it is missing)."""
        role = normalize_role(role)
        src = resolve_source(source)
        prec = pick(loader_kwargs.get("device"), loader_kwargs.get("dtype"))
        opts = tuple(sorted((k, _norm_option(v)) for k, v in loader_kwargs.items() if k not in ("device", "dtype")))
        return (role, src.identity(), str(prec.device), str(prec.dtype), opts)

    def get(self, role: str, source: str | os.PathLike[str], **loader_kwargs: Any) -> Any:
        """The cached pipeline for this request, loading it on a miss."""
        role = normalize_role(role)
        with self._lock:
            key = self.key(role, source, **loader_kwargs)
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            self._drop_stale(key)
            loader = self._loaders.get(role) or _default_loader(role)
            pipe = loader(source, **loader_kwargs)
            self.loads += 1
            self._items[key] = pipe
            while self.max_items is not None and len(self._items) > self.max_items:
                self._items.popitem(last=False)
                free_memory()
            return pipe

    def _drop_stale(self, key: tuple) -> None:
        """Forget entries for the same role + path whose file changed (other size/mtime)."""
        role, ident = key[0], key[1]
        stale = [k for k in self._items if k[0] == role and k[1][:2] == ident[:2] and k[1] != ident]
        for k in stale:
            del self._items[k]
        if stale:
            free_memory()

    def unload(
        self, role_or_key: str | tuple, source: str | os.PathLike[str] | None = None, **loader_kwargs: Any
    ) -> bool:
        """Drop one entry (by key, or by role + source + options; by role alone: every entry of that role)."""
        with self._lock:
            if isinstance(role_or_key, tuple):
                keys = [role_or_key] if role_or_key in self._items else []
            elif source is None:
                role = normalize_role(role_or_key)
                keys = [k for k in self._items if k[0] == role]
            else:
                keys = [self.key(role_or_key, source, **loader_kwargs)]
                keys = [k for k in keys if k in self._items]
            for k in keys:
                del self._items[k]
        if keys:
            free_memory()
        return bool(keys)

    def clear(self) -> None:
        """Drop everything and free memory."""
        with self._lock:
            self._items.clear()
        free_memory()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[tuple]:
        """Current keys, least recently used first."""
        return list(self._items)

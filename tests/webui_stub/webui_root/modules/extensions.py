"""Stand-in of modules/extensions.py: the installed extensions (``<data_path>/extensions/*``), all enabled."""

from __future__ import annotations

import os

from modules import paths_internal

extensions_dir = paths_internal.extensions_dir
extensions_builtin_dir = paths_internal.extensions_builtin_dir


class Extension:
    """An extension folder. ``canonical_name`` is the lowercased folder name (metadata.ini ``Name=`` is ignored)."""

    def __init__(self, name: str, path: str, enabled: bool = True, is_builtin: bool = False) -> None:
        self.name = name
        self.canonical_name = name.lower()
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin
        self.status = ""
        self.remote = None

    def list_files(self, subdir: str, extension: str) -> list:
        """Files directly in ``<ext>/<subdir>`` ending with ``extension``, sorted (not recursive)."""
        from modules import scripts

        dirpath = os.path.join(self.path, subdir)
        if not os.path.isdir(dirpath):
            return []
        res = []
        for filename in sorted(os.listdir(dirpath)):
            res.append(scripts.ScriptFile(self.path, filename, os.path.join(dirpath, filename)))
        return [x for x in res if os.path.splitext(x.path)[1].lower() == extension and os.path.isfile(x.path)]


extensions: list[Extension] = []
extension_paths: dict[str, Extension] = {}


def active() -> list[Extension]:
    return [x for x in extensions if x.enabled]


def list_extensions() -> None:
    """Builtin extensions (sorted), then user extensions (sorted) (extensions.py:244-266)."""
    extensions.clear()
    extension_paths.clear()
    for dirname, is_builtin in ((extensions_builtin_dir, True), (extensions_dir, False)):
        if not os.path.isdir(dirname):
            continue
        for name in sorted(os.listdir(dirname)):
            path = os.path.join(dirname, name)
            if not os.path.isdir(path):
                continue
            extension = Extension(name=name, path=path, is_builtin=is_builtin)
            extensions.append(extension)
            extension_paths[extension.path] = extension
            # stand-in: also the resolved path, as the fixture's extension folder is a symlink to the repository
            extension_paths[os.path.realpath(extension.path)] = extension


def find_extension(filename: str) -> Extension | None:
    parentdir = os.path.dirname(os.path.realpath(filename))
    while parentdir != filename:
        extension = extension_paths.get(parentdir)
        if extension is not None:
            return extension
        filename = parentdir
        parentdir = os.path.dirname(filename)
    return None

"""Build hook (the project is configured in pyproject.toml): copies the WebUI-side assets into the installed package.

The WebUI loads ``style.css`` and ``javascript/*.js`` from the repository root, so they live there and not inside
``extension/``; package data cannot reach outside the package folder. An installed copy (``pip install .``) gets them
as ``sd_webui_reimagine/assets/``, where the standalone app looks first (``extension/app.py``).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("style.css", "javascript/reimagine.js")


class BuildWithAssets(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "sd_webui_reimagine" / "assets"
        self.mkpath(str(target))
        for name in ASSETS:
            self.copy_file(name, str(target / Path(name).name))


setup(cmdclass={"build_py": BuildWithAssets})

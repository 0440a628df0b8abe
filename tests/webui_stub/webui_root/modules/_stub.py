"""Stand-in control, not part of the WebUI: which WebUI is imitated and where its folders are.

Set by ``webui_stub.fixture.StubWebUI.activate()`` before any other stand-in module is imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

flavour: str = os.environ.get("WEBUI_STUB_FLAVOUR", "a1111")
"""``"a1111"`` (AUTOMATIC1111 v1.10.1), ``"forge"`` (Forge 2.0.1v1.10.1) or ``"neo"`` (Forge Neo, branch ``neo`` of
Haoming02/sd-webui-forge-classic; docs/webui-contract.md §12)."""

root: Path = Path(os.environ.get("WEBUI_STUB_ROOT", Path(tempfile.gettempdir()) / "webui-stub"))
"""The WebUI's folder (script_path = data_path): extensions/, models/, outputs/ live here."""


def is_forge() -> bool:
    """True when imitating a Forge: lllyasviel's Forge 2 or Forge Neo (both have the ``backend`` package, its
    ``memory_management``, ``PostprocessImageArgs(image, index)``, ``sorting_priority``, ``InputAccordion`` as a
    function). Where Neo differs from Forge 2 the stand-in asks :func:`is_neo`."""
    return flavour in ("forge", "neo")


def is_neo() -> bool:
    """True when imitating Forge Neo."""
    return flavour == "neo"

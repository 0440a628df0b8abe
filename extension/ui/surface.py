"""What the tab needs from where it runs besides the runtime (:class:`~extension.runtime.host.Host`): the gradio-shaped
surface — its buttons, its output panel, how a button's handler runs, where results are saved, how a gallery value
becomes an image.

The WebUI implements it in :mod:`extension.webui.surface` on the WebUI's own widgets; the standalone app in
:mod:`extension.ui.standalone` on plain gradio. The tab (:mod:`.tab`, :mod:`.refine_tab`) is built on a
:class:`TabHost`, both parts in one object, and hands it to its buttons' jobs (:mod:`extension.runtime.jobs`, which
save results and read the gallery through it). The refiner hook and the REST API use the runtime part only. This
module imports no gradio.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..runtime.host import Host


@dataclass
class OutputPanel:
    """The components of an output panel (txt2img's shape): the handler returns values for the last four, in order
    ``gallery, generation_info, infotext, html_log``."""

    gallery: Any
    generation_info: Any
    infotext: Any
    html_log: Any
    extra: dict[str, Any] = field(default_factory=dict)


class TabSurface(ABC):
    """The tab's widgets, handler wrapping, saving and gallery reading."""

    tabname = "reimagine"
    tooltips = False  # whether components accept the WebUI's ``tooltip=`` keyword
    submit_js: str | None = None  # JavaScript run on Generate before the handler (the WebUI's task id + progress)
    interrupt_js: str | None = None  # JavaScript run on Interrupt (the WebUI's "Interrupting..." placeholder)
    show_progress: bool | str = False  # gradio's own progress display on the outputs
    refine_area = 1024 * 1024  # "Refine with SDXL" resizes the selected output to this many pixels (SDXL's size)

    @abstractmethod
    def run(self, fn: Callable[..., tuple], n_inputs: int) -> Callable[..., Any]:
        """Wrap a Generate-like handler ``fn(task_id, *inputs) -> (gallery, generation_info, infotext_html,
        log_html)`` taking ``n_inputs`` arguments (task id included): serialise it with other jobs, show progress,
        turn unexpected errors into an error message."""

    @abstractmethod
    def tool_button(self, symbol: str, elem_id: str, tooltip: str) -> Any:
        """A small emoji button (the WebUI's ToolButton look: class ``tool``) in the current gradio context."""

    @abstractmethod
    def output_panel(self, tabname: str = "reimagine") -> OutputPanel:
        """Build the output panel (gallery, generation info, buttons) in the current gradio context; element ids
        follow txt2img's (``<tabname>_gallery`` inside ``<tabname>_gallery_container``, ...)."""

    @abstractmethod
    def save(self, images: list[Any], infotexts: list[str], info: Any) -> list[Any]:
        """Save finished images (infotext in PNG ``parameters``) as the user's settings say; returns gallery items.

        ``info`` is the run's :class:`extension.runtime.jobs.GenerationInfo` (a ``p``-like object)."""

    @abstractmethod
    def gallery_image(self, value: Any, index: int) -> Any:
        """Image ``index`` of a gallery value (as gradio hands it to a handler) as a PIL image, or None."""


class TabHost(TabSurface, Host):
    """A :class:`~extension.runtime.host.Host` with a :class:`TabSurface`: what the tab is built on."""

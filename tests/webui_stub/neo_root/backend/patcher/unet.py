"""Neo: stand-in of ``backend/patcher/unet.py``: only the class Neo's built-in refiner looks for in
``memory_management.current_loaded_models`` (``isinstance(loaded.model, UnetPatcher)``)."""

from __future__ import annotations


class UnetPatcher:
    """The diffusion model's patcher; ``model_size()`` in bytes (stand-in)."""

    def __init__(self, name: str = "unet", size: int = 0) -> None:
        self.name = name
        self.size = size
        self.load_device = None

    def model_size(self) -> int:
        return self.size

"""sd-webui-reimagine core: Stable unCLIP 2.1 variations and an SDXL refiner post-pass.

This package knows nothing of the WebUI (only ``extension.webui`` does). Inside the WebUI it is loaded under the
unique module name ``sd_webui_reimagine`` (see ``scripts/reimagine.py``), so it uses relative imports only.
"""

__version__ = "0.1.0"

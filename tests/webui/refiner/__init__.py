"""Tests of extension/webui/refiner/ (the refiner post-pass in txt2img / img2img) against the WebUI stand-in."""

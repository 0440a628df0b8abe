"""Stand-in of modules/api/models.py: ``ScriptArg`` / ``ScriptInfo`` (what ``/sdapi/v1/script-info`` lists) and the
txt2img request fields a test needs (the real request model is generated from ``StableDiffusionProcessingTxt2Img``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ScriptArg(BaseModel):
    label: str | None = Field(default=None, title="Label")
    value: Any | None = Field(default=None, title="Value")
    minimum: Any | None = Field(default=None, title="Minimum")
    maximum: Any | None = Field(default=None, title="Maximum")
    step: Any | None = Field(default=None, title="Step")
    choices: list[str] | None = Field(default=None, title="Choices")


class ScriptInfo(BaseModel):
    name: str | None = Field(default=None, title="Name")
    is_alwayson: bool | None = Field(default=None, title="IsAlwayson")
    is_img2img: bool | None = Field(default=None, title="IsImg2img")
    args: list[ScriptArg] = Field(title="Arguments")


class StableDiffusionTxt2ImgProcessingAPI(BaseModel):
    """The request fields of ``/sdapi/v1/txt2img`` (models.py:100-113 adds the API-only ones to the processing
    class's ``__init__`` parameters; here only those a test sets)."""

    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1
    steps: int = 20
    cfg_scale: float = 7.0
    sampler_name: str | None = None
    scheduler: str | None = None
    width: int = 512
    height: int = 512
    batch_size: int = 1
    n_iter: int = 1
    enable_hr: bool = False
    hr_scale: float = 2.0
    override_settings: dict[str, Any] | None = None
    script_name: str | None = None
    script_args: list = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict = Field(default_factory=dict)
    infotext: str | None = None

"""REST API: ``/reimagine/v1/*`` on the WebUI's FastAPI app (or the standalone app's).

Request fields follow ``/sdapi/v1/txt2img`` where they overlap, and every value is checked against the same parameter
tables as the UI and the CLI. Bad input is answered with HTTP 4xx and ``{"detail": "<message>"}``, never a 500.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the request models from the route functions'
# annotations, which must be real classes, not strings.
import base64
import binascii
import io
import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .errors import ModelLoadError, ReimagineError
from .params import FRAMES, REFINER, REIMAGINE, ParamTable

MAX_IMAGE_PIXELS = 4096 * 4096  # larger uploads are refused (CLIP sees 224², the output size is set separately)
MAX_IMAGES = 16

# POST /reimagine/v1/refine takes the txt2img script's named args that make sense for uploaded images (it always
# runs in pixel mode; ``enabled``/``mode``/``keep_original`` belong to the txt2img hook).
REFINE_API = ParamTable(p for p in REFINER if p.name not in ("enabled", "mode", "keep_original", "model"))


class ModelEntry(Protocol):
    """One model the API offers (the hosts' :class:`~extension.loading.discovery.ModelChoice` has this shape):
    ``name`` is what requests use, ``path`` is relative to its models folder."""

    name: str
    kind: str  # "unclip-h" | "unclip-l" | "sdxl-refiner"
    path: str


class Backend(Protocol):
    """What the routes need from their host (the WebUI or the standalone app)."""

    def models(self) -> Sequence[ModelEntry]:
        """Every usable model."""

    def load(self, entry: ModelEntry) -> Any:
        """The loaded pipeline for ``entry`` (cached by the host)."""

    def run_job(self, description: str, job: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]) -> Any:
        """Run ``job(progress, should_stop)`` serialised with every other generation, with progress reporting."""


class ApiError(Exception):
    """An error answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------------------------------
# Validation helpers (plain functions: tested without a server)


def decode_image(data: str, index: int = 0):
    """A PIL image from base64 (optionally a ``data:image/...;base64,`` URL); 4xx errors for anything else."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, str) or not data:
        raise ApiError(422, f"images[{index}] must be a base64-encoded image string")
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, f"images[{index}] is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ApiError(
                    413,
                    f"images[{index}] is {width}x{height}; the limit is {MAX_IMAGE_PIXELS:,} pixels "
                    "(e.g. 4096x4096): downscale it first",
                )
            probe.load()
            return probe.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise ApiError(422, f"images[{index}] is not an image PIL can read (PNG, JPEG, WebP, …)") from None


def encode_png(image, infotext_text: str) -> str:
    """Base64 PNG carrying its infotext, as ``/sdapi/v1/txt2img`` returns images."""
    from .outputs import png_info

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(infotext_text))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def find_model(backend: Backend, name: str | None, kinds: Sequence[str]) -> ModelEntry:
    """The model called ``name`` among ``kinds``; no path is ever built from the request."""
    candidates = [entry for entry in backend.models() if entry.kind in kinds]
    if name is None or name == "":
        if not candidates:
            raise ApiError(404, f"no {' or '.join(kinds)} model found; see GET /reimagine/v1/models")
        return candidates[0]
    if "/" in name or "\\" in name or ".." in name:
        raise ApiError(422, f"model must be a name from GET /reimagine/v1/models, not a path: {name!r}")
    for entry in candidates:
        if name in (entry.name, entry.path):
            return entry
    names = ", ".join(entry.name for entry in candidates) or "none"
    raise ApiError(404, f"unknown model {name!r}; available {' / '.join(kinds)} models: {names}")


def check_credentials(api_auth: str | None) -> Callable[[str, str], bool] | None:
    """A checker for the WebUI's ``--api-auth user:pass[,user2:pass2]``, or ``None`` when auth is off."""
    if not api_auth:
        return None
    pairs = [item.split(":", 1) for item in api_auth.split(",") if ":" in item]
    credentials = {user.strip(): password for user, password in pairs}

    def check(user: str, password: str) -> bool:
        expected = credentials.get(user)
        # compare_digest on both parts, as the WebUI's own Api.auth does
        return expected is not None and secrets.compare_digest(password, expected)

    return check


# ---------------------------------------------------------------------------------------------------------------------
# Routes


def _request_model(name: str, table: ParamTable, extra: dict[str, tuple[Any, Any]]):
    """A pydantic model (v1 or v2) whose fields come from ``table``; range checks stay in the table."""
    import pydantic

    fields: dict[str, tuple[Any, Any]] = {param.name: (param.kind | None, None) for param in table}
    fields.update(extra)
    # Unknown fields are an error (a typo must not be silently ignored); pydantic 1 and 2 spell this differently.
    if pydantic.VERSION.startswith("1."):
        config: Any = type("Config", (), {"extra": "forbid"})
    else:
        config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(name, __config__=config, **fields)


def _values(body: Any) -> dict[str, Any]:
    data = body.model_dump() if hasattr(body, "model_dump") else body.dict()
    return {key: value for key, value in data.items() if value is not None}


def add_routes(app: Any, backend: Backend, *, api_auth: str | None = None, prefix: str = "/reimagine/v1") -> None:
    """Add the Reimagine routes to a FastAPI ``app``; ``api_auth`` as the WebUI's ``--api-auth``."""
    from fastapi import Depends, HTTPException
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPBasic, HTTPBasicCredentials

    check = check_credentials(api_auth)
    dependencies = []
    if check is not None:
        basic = HTTPBasic()

        def authenticate(credentials: HTTPBasicCredentials = Depends(basic)) -> None:  # noqa: B008
            if not check(credentials.username, credentials.password):
                raise HTTPException(401, "Incorrect username or password", headers={"WWW-Authenticate": "Basic"})

        dependencies.append(Depends(authenticate))

    variations_body = _request_model(
        "ReimagineVariationsRequest",
        REIMAGINE,
        {"images": (list, ...), "weights": (list | None, None), "model": (str | None, None)},
    )
    interpolate_body = _request_model(
        "ReimagineInterpolateRequest",
        REIMAGINE,
        {"images": (list, ...), "frames": (int | None, None), "model": (str | None, None)},
    )

    def answer(call: Callable[[], dict[str, Any]]) -> Any:
        try:
            return call()
        except ApiError as error:
            return JSONResponse({"detail": error.message}, status_code=error.status)
        except ModelLoadError as error:
            return JSONResponse({"detail": str(error)}, status_code=422)
        except ReimagineError as error:
            return JSONResponse({"detail": str(error)}, status_code=422)

    refine_body = _request_model(
        "ReimagineRefineRequest",
        REFINE_API,
        {"images": (list, ...), "model": (str | None, None), "seed": (int | None, None)},
    )

    def list_models() -> list[dict[str, str]]:
        return [{"name": e.name, "kind": e.kind, "path": e.path} for e in backend.models()]

    def variations(body: variations_body) -> Any:  # type: ignore[valid-type]
        return answer(lambda: _run_variations(backend, _values(body)))

    def interpolate(body: interpolate_body) -> Any:  # type: ignore[valid-type]
        return answer(lambda: _run_interpolate(backend, _values(body)))

    def refine(body: refine_body) -> Any:  # type: ignore[valid-type]
        return answer(lambda: _run_refine(backend, _values(body)))

    app.add_api_route(f"{prefix}/models", list_models, methods=["GET"], dependencies=dependencies)
    app.add_api_route(f"{prefix}/refine", refine, methods=["POST"], dependencies=dependencies)
    app.add_api_route(f"{prefix}/variations", variations, methods=["POST"], dependencies=dependencies)
    app.add_api_route(f"{prefix}/interpolate", interpolate, methods=["POST"], dependencies=dependencies)


def _images(values: dict[str, Any], count: tuple[int, int]) -> list[Any]:
    data = values.pop("images", None)
    low, high = count
    if not isinstance(data, list) or not low <= len(data) <= high:
        wanted = f"exactly {low}" if low == high else f"{low} to {high}"
        raise ApiError(422, f"images must be a list of {wanted} base64 images")
    return [decode_image(item, index) for index, item in enumerate(data)]


def _response(result: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    info = {
        "infotexts": result.infotexts,
        "all_seeds": result.seeds,
        "seed": result.seeds[0] if result.seeds else None,
        "interrupted": result.interrupted,
    }
    return {
        "images": [encode_png(image, text) for image, text in zip(result.images, result.infotexts)],
        "parameters": parameters,
        "info": json.dumps(info),
    }


def _run_variations(backend: Backend, values: dict[str, Any]) -> dict[str, Any]:
    from .engine.unclip import VariationRequest, generate

    model = find_model(backend, values.pop("model", None), ("unclip-h", "unclip-l"))
    images = _images(values, (1, MAX_IMAGES))
    weights = values.pop("weights", None)
    settings = REIMAGINE.validate(values)
    request = VariationRequest(images=images, weights=weights, **settings).validated()
    result = backend.run_job(
        "Reimagine variations",
        lambda progress, stop: generate(backend.load(model), request, progress=progress, should_stop=stop),
    )
    return _response(result, {**settings, "weights": request.weights, "model": model.name})


def _run_interpolate(backend: Backend, values: dict[str, Any]) -> dict[str, Any]:
    from .engine.unclip import InterpolationRequest, VariationRequest, interpolate

    model = find_model(backend, values.pop("model", None), ("unclip-h", "unclip-l"))
    image_a, image_b = _images(values, (2, 2))
    frames = FRAMES.coerce(values.pop("frames", None))
    settings = REIMAGINE.validate(values)
    VariationRequest(images=[image_a, image_b], **{**settings, "mix": "slerp"}).validated()
    request = InterpolationRequest(image_a, image_b, frames, VariationRequest(images=[], **settings))
    result = backend.run_job(
        "Reimagine interpolation",
        lambda progress, stop: interpolate(backend.load(model), request, progress=progress, should_stop=stop),
    )
    return _response(result, {**settings, "frames": frames, "model": model.name})


def _run_refine(backend: Backend, values: dict[str, Any]) -> dict[str, Any]:
    from .engine import Result
    from .engine.refiner import RefineRequest, refine

    model = find_model(backend, values.pop("model", None), ("sdxl-refiner",))
    images = _images(values, (1, MAX_IMAGES))
    seed = values.pop("seed", -1)
    settings = REFINE_API.validate(values)
    # Each uploaded PNG's own infotext (a WebUI or Reimagine output) is the base its blank controls inherit from.
    requests = [
        RefineRequest.from_controls(settings, image.info.get("parameters"), seed, images=[image], mode="Pixel")
        for image in images
    ]

    def job(progress: Any, stop: Any) -> Result:
        pipe, result = backend.load(model), Result()
        for request in requests:
            part = refine(pipe, request, progress=progress, should_stop=stop)
            result.images += part.images
            result.infotexts += part.infotexts
            result.seeds += part.seeds
            if part.interrupted:
                result.interrupted = True
                break
        return result

    result = backend.run_job("Refiner post-pass", job)
    return _response(result, {**settings, "seed": seed, "model": model.name})

"""REST API: ``/reimagine/v1/*`` on the WebUI's FastAPI app (or the standalone app's).

Request fields follow ``/sdapi/v1/txt2img`` where they overlap, and every value is checked against the same parameter
tables as the UI and the CLI. Bad input is answered with HTTP 4xx and ``{"detail": "<message>"}``, never a 500.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the request models from the route functions'
# annotations, which must be real classes, not strings.
import base64
import io
import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from . import rest
from .errors import ModelLoadError, ReimagineError
from .params import FRAMES, REFINER, REIMAGINE, ParamTable
from .rest import ApiError, JobStop

MAX_IMAGES = 16
NATIVE_AREA = 768 * 768  # width/height 0: the model's native area (unCLIP 2.1), for the work bound

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

    def load(self, entry: ModelEntry, job: dict[str, Any] | None = None) -> Any:
        """The loaded pipeline for ``entry`` (cached by the host); ``job``: the output ``width``, ``height`` and
        ``batch_size`` to plan memory for."""

    def run_job(self, description: str, job: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]) -> Any:
        """Run ``job(progress, should_stop)`` serialised with every other generation, with progress reporting."""


# ---------------------------------------------------------------------------------------------------------------------
# Validation helpers (plain functions: tested without a server)


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


DELIBERATE_MESSAGE = (
    "send Content-Type: application/json (e.g. curl -H 'Content-Type: application/json' -d '{}') or an "
    "X-Requested-With header: a plain form POST, which any web page can send, is refused"
)
STOP_BODY = {  # documents the optional JSON body, so clients and fuzzers send one
    "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
}


def deliberate(headers: Any) -> bool:
    """Whether a stop request could not have been a "simple" cross-site request (an HTML form or a ``fetch`` in
    ``no-cors`` mode): a JSON body or a custom header needs a CORS preflight, which no other origin passes."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or "x-requested-with" in headers


def _values(body: Any) -> dict[str, Any]:
    data = body.model_dump() if hasattr(body, "model_dump") else body.dict()
    values = {key: value for key, value in data.items() if value is not None}
    for key, value in values.items():
        if isinstance(value, str) and key != "images":
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(422, f"{key} is not valid Unicode text (a lone surrogate)") from None
    return values


def add_routes(app: Any, backend: Backend, *, api_auth: str | None = None, prefix: str = "/reimagine/v1") -> None:
    """Add the Reimagine routes to a FastAPI ``app``; ``api_auth`` as the WebUI's ``--api-auth``."""
    from fastapi import APIRouter, Depends, HTTPException, Request
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

    images, text, number = rest.image_list_type(), rest.field_type(REIMAGINE["prompt"]), rest.number_type()
    variations_body = rest.request_model(
        "ReimagineVariationsRequest",
        REIMAGINE,
        {
            "images": (images, ...),
            "weights": (list[number] | None, None),
            "model": (text | None, None),
            "text_diff": (rest.text_diff_type() | None, None),  # edit by text (extension/engine/text_diff.py)
            "frames": (number | None, None),  # with text_diff: a strip from amount 0 to text_diff.amount
        },
    )
    interpolate_body = rest.request_model(
        "ReimagineInterpolateRequest",
        REIMAGINE,
        {"images": (images, ...), "frames": (number | None, None), "model": (text | None, None)},
    )
    refine_body = rest.request_model(
        "ReimagineRefineRequest",
        REFINE_API,
        {"images": (images, ...), "model": (text | None, None), "seed": (number | None, None)},
    )
    error_model, generation_model, model_info = rest.answer_models()
    job_errors = rest.error_responses(error_model, *((401,) if check else ()), 404, 413, 422)

    def answer(call: Callable[[], dict[str, Any]]) -> Any:
        try:
            return call()
        except ApiError as error:
            return JSONResponse({"detail": error.message}, status_code=error.status)
        except ModelLoadError as error:
            return JSONResponse({"detail": str(error)}, status_code=422)
        except ReimagineError as error:
            return JSONResponse({"detail": str(error)}, status_code=422)

    def control() -> Any:
        get = getattr(backend, "control", None)
        return get() if callable(get) else None

    def list_models() -> list[dict[str, str]]:
        return [{"name": e.name, "kind": e.kind, "path": e.path} for e in backend.models()]

    async def variations(body: variations_body, request: Request) -> Any:  # type: ignore[valid-type]
        return await rest.run_watched(
            request, lambda stop: answer(lambda: _run_variations(backend, _values(body), stop)), control()
        )

    async def interpolate(body: interpolate_body, request: Request) -> Any:  # type: ignore[valid-type]
        return await rest.run_watched(
            request, lambda stop: answer(lambda: _run_interpolate(backend, _values(body), stop)), control()
        )

    async def refine(body: refine_body, request: Request) -> Any:  # type: ignore[valid-type]
        return await rest.run_watched(
            request, lambda stop: answer(lambda: _run_refine(backend, _values(body), stop)), control()
        )

    def stopper(action: str) -> Callable[..., Any]:
        def stop(request: Request) -> Any:
            if not deliberate(request.headers):
                return JSONResponse({"detail": DELIBERATE_MESSAGE}, status_code=415)
            target = control()
            if target is None:
                return JSONResponse({"detail": f"this host cannot {action} jobs"}, status_code=409)
            getattr(target, action)()
            return {}

        return stop

    router = APIRouter(route_class=rest.route_class(), dependencies=dependencies)
    router.add_api_route(
        f"{prefix}/models",
        list_models,
        methods=["GET"],
        response_model=list[model_info],
        responses=rest.error_responses(error_model, *((401,) if check else ())),
    )
    for name, route in (("refine", refine), ("variations", variations), ("interpolate", interpolate)):
        router.add_api_route(
            f"{prefix}/{name}", route, methods=["POST"], response_model=generation_model, responses=job_errors
        )
    for action in ("interrupt", "skip"):
        router.add_api_route(
            f"{prefix}/{action}",
            stopper(action),
            methods=["POST"],
            response_model=dict,
            responses=rest.error_responses(error_model, *((401,) if check else ()), 409, 415),
            openapi_extra=STOP_BODY,
        )
    app.include_router(router)


def _probes(values: dict[str, Any], count: tuple[int, int]) -> list[Any]:
    return rest.probe_images(values.pop("images", None), count)


def _outputs(settings: dict[str, Any]) -> int:
    return int(settings["n_iter"]) * int(settings["batch_size"])


def _chunks(*texts: str) -> int:
    """The most 75-token chunks among ``texts`` (raises ``PromptError``, a 422, over the limits)."""
    from .prompts import count_chunks

    return max((count_chunks(text) for text in texts), default=1)


def _check_work(outputs: int, steps: int, settings: dict[str, Any]) -> None:
    width, height = settings["width"], settings["height"]
    area = width * height if width and height else NATIVE_AREA
    rest.check_work(outputs, steps, area, 1, _chunks(settings["prompt"], settings["negative_prompt"]))


def _text_diff(body: dict[str, Any] | None, frames: Any) -> tuple[Any, int | None]:
    """The REST ``text_diff: {from, to, amount}`` and ``frames`` fields -> (edit, strip frames), built by
    ``TextDiff.from_controls``; a 422 on an empty/too long text, an amount outside 0-1 or frames without a text
    diff."""
    from .engine.text_diff import TextDiff

    if body is None:
        if frames is not None:
            raise ApiError(422, "frames needs text_diff (a strip along a text edit); /interpolate morphs two images")
        return None, None
    values = {
        "text_diff_to": body.get("to") or "",
        "text_diff_from": body.get("from"),
        "text_diff_amount": body.get("amount"),
    }
    names = {"text_diff_to": "text_diff.to", "text_diff_from": "text_diff.from", "text_diff_amount": "text_diff.amount"}
    diff = TextDiff.from_controls(values, blank_is_off=False, names=names)
    return diff, (None if frames is None else FRAMES.coerce(frames))


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


def _run_variations(backend: Backend, values: dict[str, Any], stop: JobStop | None = None) -> dict[str, Any]:
    from dataclasses import replace

    from .engine.text_diff import text_diff_strip
    from .engine.unclip import VariationRequest, generate

    stop = stop or JobStop()
    model = find_model(backend, values.pop("model", None), ("unclip-h", "unclip-l"))
    probes = _probes(values, (1, MAX_IMAGES))
    weights = values.pop("weights", None)
    diff, frames = _text_diff(values.pop("text_diff", None), values.pop("frames", None))
    settings = REIMAGINE.validate(values)
    request = VariationRequest.from_controls(settings, probes, weights, diff)
    _check_work(frames or _outputs(settings), settings["steps"], settings)

    size = {"width": settings["width"], "height": settings["height"]}

    def job(progress: Any, should_stop: Any) -> Any:
        decoded = replace(request, images=rest.decode_images(probes))
        if frames:
            pipe = backend.load(model, {**size, "batch_size": 1})
            return text_diff_strip(pipe, decoded, diff, frames, progress=progress, should_stop=stop.wrap(should_stop))
        return generate(
            backend.load(model, {**size, "batch_size": settings["batch_size"]}),
            decoded,
            progress=progress,
            should_stop=stop.wrap(should_stop),
            skip_batch=stop.skip_only,
        )

    result = rest.on_job_thread(stop, lambda: backend.run_job("Reimagine variations", job))
    parameters = {**settings, "weights": request.weights, "model": model.name}
    if diff is not None:
        parameters["text_diff"] = {"from": diff.from_text, "to": diff.to_text, "amount": diff.amount}
        parameters["frames"] = frames
    return _response(result, parameters)


def _run_interpolate(backend: Backend, values: dict[str, Any], stop: JobStop | None = None) -> dict[str, Any]:
    from dataclasses import replace

    from .engine.unclip import InterpolationRequest, interpolate

    stop = stop or JobStop()
    model = find_model(backend, values.pop("model", None), ("unclip-h", "unclip-l"))
    probes = _probes(values, (2, 2))
    frames = FRAMES.coerce(values.pop("frames", None))
    settings = REIMAGINE.validate(values)
    request = InterpolationRequest.from_controls(settings, *probes, frames)
    _check_work(frames * settings["batch_size"], settings["steps"], settings)

    def job(progress: Any, should_stop: Any) -> Any:
        image_a, image_b = rest.decode_images(probes)
        pipe = backend.load(model, {"width": settings["width"], "height": settings["height"], "batch_size": 1})
        decoded = replace(request, image_a=image_a, image_b=image_b)
        return interpolate(pipe, decoded, progress=progress, should_stop=stop.wrap(should_stop))

    result = rest.on_job_thread(stop, lambda: backend.run_job("Reimagine interpolation", job))
    return _response(result, {**settings, "frames": frames, "model": model.name})


def _run_refine(backend: Backend, values: dict[str, Any], stop: JobStop | None = None) -> dict[str, Any]:
    from dataclasses import replace

    from .engine import Result
    from .engine.refiner import RefineRequest, refine

    stop = stop or JobStop()
    model = find_model(backend, values.pop("model", None), ("sdxl-refiner",))
    probes = _probes(values, (1, MAX_IMAGES))
    seed = REIMAGINE["seed"].coerce(values.pop("seed", -1))
    settings = REFINE_API.validate(values)
    # Each uploaded PNG's own infotext (a WebUI or Reimagine output) is the base its blank controls inherit from;
    # inherited values are checked like given ones (resolved) before anything runs.
    requests = [
        RefineRequest.from_controls(settings, probe.info.get("parameters"), seed, images=[probe], mode="Pixel")
        for probe in probes
    ]
    resolved = [request.resolved() for request in requests]
    chunks = _chunks(*(text for request in resolved for text in (request.prompt, request.negative_prompt)))
    rest.check_work(1, settings["steps"], sum(probe.size[0] * probe.size[1] for probe in probes), 1, chunks)

    def job(progress: Any, should_stop: Any) -> Result:
        width, height = max((probe.size for probe in probes), key=lambda size: size[0] * size[1])
        pipe, result = backend.load(model, {"width": width, "height": height, "batch_size": 1}), Result()
        for request, image in zip(requests, rest.decode_images(probes)):
            part = refine(pipe, replace(request, images=[image]), progress=progress, should_stop=stop.wrap(should_stop))
            result.images += part.images
            result.infotexts += part.infotexts
            result.seeds += part.seeds
            if part.interrupted:
                if stop.skip_only():  # Skip: this image is dropped, the next ones are refined
                    continue
                result.interrupted = True
                break
        return result

    result = rest.on_job_thread(stop, lambda: backend.run_job("Refiner post-pass", job))
    return _response(result, {**settings, "seed": seed, "model": model.name})

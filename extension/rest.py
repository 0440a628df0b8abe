"""The REST API's guard rails: strictly typed request models, string error bodies that match the OpenAPI schema,
bounded image decoding and work per request, and jobs that stop when their client goes away.

Used by :mod:`extension.api`; nothing here knows the WebUI.
"""

# No ``from __future__ import annotations``: pydantic reads the annotations built here at runtime.
import asyncio
import concurrent.futures
import io
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .images import decode_base64, normalized
from .params import Param, ParamTable

MAX_IMAGE_PIXELS = 4096 * 4096  # one upload (CLIP sees 224², the output size is set separately)
MAX_REQUEST_PIXELS = 4 * 4096 * 4096  # all uploads of one request together (decoded RGB: 3 bytes a pixel)
MAX_WORK = 2**34  # output pixels × steps × prompt chunks per request (e.g. 64 images of 1024² at 256 steps)
DECODE_SLOTS = threading.BoundedSemaphore(1)  # requests decoding their uploads at once (the jobs run one at a time)
DISCONNECT_POLL_S = 0.25
# Every REST job (decode + generation) runs on this one thread. They are serialised by the host's job lock anyway;
# on one thread the big transient buffers of decoding come from one malloc arena and are reused, where jobs spread over
# the server's worker threads left each thread's arena at its peak (measured: bench/bench_api_memory.py).
JOB_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reimagine-rest-job")


class ApiError(Exception):
    """An error answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------------------------------
# Request and answer models (pydantic 1 and 2)


def _strict() -> tuple[Any, Any, Any, Any]:
    from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr

    return StrictBool, StrictFloat, StrictInt, StrictStr


def field_type(param: Param) -> Any:
    """The JSON type of a table parameter, with no coercion: ``"20"``, ``true`` or ``[1]`` for a number is a 422.
    Integral floats (``20.0``) pass here and the table refuses ``2.7`` with its own message."""
    strict_bool, strict_float, strict_int, strict_str = _strict()
    if param.kind is bool:
        return strict_bool
    if param.kind in (int, float):
        return strict_int | strict_float
    return strict_str  # choices are checked by the table, with its message


def number_type() -> Any:
    """A JSON number (not a string or a boolean)."""
    _, strict_float, strict_int, _ = _strict()
    return strict_int | strict_float


def request_model(name: str, table: ParamTable, extra: dict[str, tuple[Any, Any]]) -> Any:
    """A pydantic model whose fields are ``table``'s (typed, optional) plus ``extra``; unknown fields are refused."""
    import pydantic

    fields: dict[str, tuple[Any, Any]] = {param.name: (field_type(param) | None, None) for param in table}
    fields.update(extra)
    if pydantic.VERSION.startswith("1."):
        config: Any = type("Config", (), {"extra": "forbid"})
    else:
        config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(name, __config__=config, **fields)


def text_diff_type() -> Any:
    """``text_diff``: ``{"from": text, "to": text, "amount": number}`` (``from`` and ``amount`` optional)."""
    import pydantic

    _, strict_float, strict_int, strict_str = _strict()
    fields: dict[str, Any] = {
        "from": (strict_str | None, None),
        "to": (strict_str, ...),
        "amount": (strict_int | strict_float | None, None),
    }
    if pydantic.VERSION.startswith("1."):
        config: Any = type("Config", (), {"extra": "forbid"})
    else:
        config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model("ReimagineTextDiff", __config__=config, **fields)


def image_list_type() -> Any:
    """``images``: a list of base64 strings."""
    _, _, _, strict_str = _strict()
    return list[strict_str]


def answer_models() -> tuple[Any, Any, Any]:
    """``(Error, Generation, ModelInfo)``: the bodies the routes answer, for the OpenAPI schema."""
    import pydantic

    error = pydantic.create_model("ReimagineError", detail=(str, ...))
    generation = pydantic.create_model(
        "ReimagineGeneration", images=(list[str], ...), parameters=(dict, ...), info=(str, ...)
    )
    model_info = pydantic.create_model("ReimagineModel", name=(str, ...), kind=(str, ...), path=(str, ...))
    return error, generation, model_info


def error_responses(error_model: Any, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the 4xx answers a route gives (all ``{"detail": "<message>"}``)."""
    texts = {
        400: "Bad request",
        401: "Incorrect username or password",
        404: "Unknown model",
        409: "Nothing to stop",
        413: "Too large: images or work over the limits",
        415: "Send a JSON body or an X-Requested-With header",
        422: "Invalid value",
    }
    return {status: {"model": error_model, "description": texts[status]} for status in statuses}


def validation_message(errors: Sequence[dict[str, Any]]) -> str:
    """One line from pydantic's errors (v1 or v2), ASCII-only: no part of the request is echoed unescaped (a lone
    UTF-16 surrogate in an echoed key made FastAPI's own handler fail with a 500)."""
    parts = []
    for error in errors[:5]:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        where = ".".join(location) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    message = "; ".join(parts) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
    return message.encode("ascii", "backslashreplace").decode("ascii")


def route_class() -> Any:
    """An ``APIRoute`` whose request-validation errors answer 422 ``{"detail": "<message>"}`` (the schema's shape),
    on our routes only: the WebUI's app keeps its own handlers."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute

    class ReimagineRoute(APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            handler = super().get_route_handler()

            async def guarded(request: Any) -> Any:
                try:
                    return await handler(request)
                except RequestValidationError as error:
                    return JSONResponse({"detail": validation_message(error.errors())}, status_code=422)

            return guarded

    return ReimagineRoute


# ---------------------------------------------------------------------------------------------------------------------
# Images: header checks first, pixels decoded one request at a time


def probe_image(data: Any, index: int) -> Any:
    """A lazily opened PIL image (header read: size, mode, PNG text) from base64, size-checked; nothing decoded."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, str) or not data:
        raise ApiError(422, f"images[{index}] must be a base64-encoded image string")
    try:
        raw = decode_base64(data)
    except ValueError:
        raise ApiError(422, f"images[{index}] is not valid base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ApiError(422, f"images[{index}] is not an image PIL can read (PNG, JPEG, WebP, …)") from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ApiError(
            413,
            f"images[{index}] is {width}x{height}; the limit is {MAX_IMAGE_PIXELS:,} pixels (e.g. 4096x4096): "
            "downscale it first",
        )
    if width < 1 or height < 1:
        raise ApiError(422, f"images[{index}] is empty ({width}x{height})")
    return image


def probe_images(data: Any, count: tuple[int, int]) -> list[Any]:
    """Every upload probed; the number of images and their total pixels checked."""
    low, high = count
    if not isinstance(data, list) or not low <= len(data) <= high:
        wanted = f"exactly {low}" if low == high else f"{low} to {high}"
        raise ApiError(422, f"images must be a list of {wanted} base64 images")
    probes = [probe_image(item, index) for index, item in enumerate(data)]
    total = sum(image.size[0] * image.size[1] for image in probes)
    if total > MAX_REQUEST_PIXELS:
        raise ApiError(
            413, f"the images have {total:,} pixels together; the limit per request is {MAX_REQUEST_PIXELS:,}"
        )
    return probes


def decode_images(probes: Sequence[Any]) -> list[Any]:
    """The probed uploads decoded (upright, 8-bit RGB), one request at a time."""
    from PIL import Image

    with DECODE_SLOTS:
        images = []
        for index, probe in enumerate(probes):
            try:
                probe.load()
                images.append(normalized(probe))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                raise ApiError(422, f"images[{index}] could not be decoded (truncated or damaged)") from None
            finally:
                probe.close()
        return images


def check_work(outputs: int, steps: int, width: int, height: int, chunks: int = 1) -> None:
    """Refuse a request of more than :data:`MAX_WORK` output pixels × steps × prompt chunks (75 tokens each; the
    longer of prompt and negative prompt) with a 413 that says what to lower."""
    work = outputs * steps * width * height * max(chunks, 1)
    if work > MAX_WORK:
        of_prompt = f" x {chunks} prompt chunks of 75 tokens" if chunks > 1 else ""
        raise ApiError(
            413,
            f"too much work for one request: {outputs} image(s) x {steps} steps x {width}x{height} pixels{of_prompt}; "
            f"the limit is {MAX_WORK:,}: lower n_iter, batch_size, steps or the size (or shorten the prompt), or split it",
        )


# ---------------------------------------------------------------------------------------------------------------------
# Stopping


class JobStop:
    """A REST job's stop conditions: its client went away (``cancelled``), or the host's Interrupt / Skip."""

    def __init__(self, control: Any = None) -> None:
        self.cancelled = threading.Event()
        self.control = control

    def wrap(self, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        """The engine's per-step ``should_stop``: the host's, or the client gone."""
        return lambda: self.cancelled.is_set() or should_stop()

    def skip_only(self) -> bool:
        """A cut-short batch was a Skip (go on with the next batch), not an Interrupt; clears the skip."""
        control = self.control
        if control is None or self.cancelled.is_set() or getattr(control, "interrupted", False):
            return False
        if getattr(control, "skipped", False):
            control.clear_skip()
            return True
        return False


def on_job_thread(stop: "JobStop", run: Callable[[], Any]) -> Any:
    """``run()`` on :data:`JOB_THREAD`, waited for; skipped when the client left while it was queued."""

    def guarded() -> Any:
        if stop.cancelled.is_set():
            raise ApiError(400, "the client disconnected before the job started")
        return run()

    return JOB_THREAD.submit(guarded).result()


async def run_watched(request: Any, work: Callable[[JobStop], Any], control: Any = None) -> Any:
    """Run ``work(stop)`` in a worker thread; when the client disconnects, set ``stop.cancelled`` and let the job end
    at its next step (it still releases the job lock the normal way)."""
    from starlette.concurrency import run_in_threadpool

    stop = JobStop(control)
    task = asyncio.ensure_future(run_in_threadpool(work, stop))
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if not task.done() and not stop.cancelled.is_set() and await request.is_disconnected():
            stop.cancelled.set()
    return task.result()

"""The web application: JSON API, media files (HTTP ranges), thumbnails, uploads, the job queue's
event stream, and the page (static/). Built by `create_app(ServeConfig(...))`; `sbsconvert serve`
runs it with uvicorn."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sbsconvert.errors import SbsError
from sbsconvert.serve.jobs import JobQueue
from sbsconvert.serve.library import MEDIA_EXTENSIONS, PAIR_SUFFIXES, Forbidden, Library, eyes_side_by_side
from sbsconvert.serve.preview import Previewer

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "sbsconvert_token"
MAX_NAME_LENGTH = 120
MAX_UPLOAD_DEPTH = 4  # folders inside a dropped folder
EVENT_STREAM_SECONDS = 25.0  # then the browser's EventSource reconnects (keeps proxies and tests bounded)


@dataclass
class ServeConfig:
    folders: list[Path]
    state: Path
    host: str = "127.0.0.1"
    token: str | None = None  # required on every request when set (any bind but loopback)
    values: dict[str, Any] = field(default_factory=dict)  # settings for every job: disparity maps, device
    max_upload_bytes: int = 4 << 30
    event_stream_seconds: float = EVENT_STREAM_SECONDS


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def create_app(config: ServeConfig) -> Starlette:
    if not is_loopback(config.host) and not config.token:
        raise SbsError(f"serving on {config.host} (not this computer only) needs an access token")
    config.state.mkdir(parents=True, exist_ok=True)
    library = Library(config.folders, config.state)
    jobs = JobQueue(config.state, library.root("converted").folder, config.values)
    previewer = Previewer(library.root("previews").folder, config.values)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        jobs.start()
        yield
        await asyncio.to_thread(jobs.stop)

    async def index(request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        if config.token:  # the token of the printed URL, kept for the page's media and event requests
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="strict")
        return response

    async def settings(request: Request) -> JSONResponse:
        from sbsconvert.layout import LAYOUTS
        from sbsconvert.presets import preset_names
        from sbsconvert.settings import MAX_DIVERGENCE

        return JSONResponse({
            "roots": [{"name": root.name, "writable": root.writable} for root in library.roots.values()],
            "presets": list(preset_names()), "formats": list(LAYOUTS), "max_divergence": MAX_DIVERGENCE,
            "max_upload_bytes": config.max_upload_bytes,
        })

    async def listing(request: Request) -> JSONResponse:
        query = request.query_params
        return JSONResponse(await asyncio.to_thread(library.listing, query.get("root", ""), query.get("path", "")))

    async def media(request: Request) -> Response:
        path = _media(library, request)
        return FileResponse(path)  # answers Range requests with 206 (video seeking)

    async def thumbnail(request: Request) -> Response:
        path = _media(library, request)
        return FileResponse(await asyncio.to_thread(library.thumbnail, path),
                            headers={"Cache-Control": "private, max-age=3600"})

    async def eyes(request: Request) -> Response:
        path = _media(library, request)
        if path.suffix.lower() not in PAIR_SUFFIXES:
            raise SbsError(f"{path.name} is not a stereo MPO or HEIC photo")
        return Response(await asyncio.to_thread(eyes_side_by_side, path), media_type="image/jpeg")

    async def upload(request: Request) -> JSONResponse:
        batch = request.query_params.get("batch", "")
        if not re.fullmatch(r"[A-Za-z0-9]{8,32}", batch):
            raise SbsError("batch: 8 to 32 letters and digits, chosen by the page for one drop")
        relative = safe_upload_name(request.query_params.get("name", ""))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_upload_bytes:
            raise HTTPException(413, _too_large(config.max_upload_bytes))
        folder = library.root("uploads").folder / batch
        target = _free_name(folder / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")  # hidden until complete
        received = 0
        try:
            with partial.open("wb") as handle:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > config.max_upload_bytes:
                        raise HTTPException(413, _too_large(config.max_upload_bytes))
                    handle.write(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return JSONResponse(library.address(target), status_code=201)

    async def job_list(request: Request) -> JSONResponse:
        return JSONResponse([_job_view(library, job) for job in jobs.jobs()])

    async def job_add(request: Request) -> JSONResponse:
        body = await _json(request)
        inputs, paths = _inputs(library, body.get("inputs"))
        job = jobs.add(inputs, paths, job_options(body.get("options", {})))
        return JSONResponse(_job_view(library, job), status_code=201)

    async def job_cancel(request: Request) -> JSONResponse:
        try:
            return JSONResponse(_job_view(library, jobs.cancel(request.path_params["job"])))
        except KeyError:
            raise HTTPException(404, "no such job") from None

    async def job_remove(request: Request) -> JSONResponse:
        try:
            jobs.remove(request.path_params["job"])
        except KeyError:
            raise HTTPException(404, "no such job") from None
        except ValueError as error:
            raise HTTPException(409, str(error)) from None
        return JSONResponse({"removed": request.path_params["job"]})

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            seen, ends = -1, time.monotonic() + config.event_stream_seconds
            while time.monotonic() < ends and not await request.is_disconnected():
                if jobs.version != seen:
                    seen = jobs.version
                    data = json.dumps([_job_view(library, job) for job in jobs.jobs()])
                    yield f"id: {seen}\nevent: jobs\ndata: {data}\n\n"
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def preview(request: Request) -> JSONResponse:
        body = await _json(request)
        inputs, paths = _inputs(library, [body.get("input")])
        started = time.perf_counter()
        made, layout = await asyncio.to_thread(previewer.make, paths[0], job_options(body.get("options", {})))
        return JSONResponse({**library.address(made), "layout": layout,
                             "seconds": round(time.perf_counter() - started, 3)})

    routes = [
        Route("/", index),
        Route("/api/settings", settings),
        Route("/api/list", listing),
        Route("/api/upload", upload, methods=["PUT"]),
        Route("/api/jobs", job_list),
        Route("/api/jobs", job_add, methods=["POST"]),
        Route("/api/jobs/{job}/cancel", job_cancel, methods=["POST"]),
        Route("/api/jobs/{job}", job_remove, methods=["DELETE"]),
        Route("/api/events", events),
        Route("/api/preview", preview, methods=["POST"]),
        Route("/files/{root}/{path:path}", media),
        Route("/thumbs/{root}/{path:path}", thumbnail),
        Route("/eyes/{root}/{path:path}", eyes),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    middleware = [Middleware(TokenCheck, token=config.token)] if config.token else [
        # Loopback only: refuse pages of other sites that rename themselves to 127.0.0.1 (DNS rebinding).
        Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "testserver"])]
    handlers = {SbsError: _error, HTTPException: _error, Exception: _error}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)


def job_options(raw: Any) -> dict[str, Any]:
    """The settings a page may choose, checked: a preset, a format, divergence and convergence (no
    paths: outputs go to the server's own folder)."""
    from sbsconvert.layout import LAYOUTS
    from sbsconvert.presets import preset_names
    from sbsconvert.settings import MAX_DIVERGENCE

    if not isinstance(raw, dict):
        raise SbsError("options: an object")
    unknown = sorted(set(raw) - {"preset", "format", "divergence", "convergence"})
    if unknown:
        raise SbsError(f"options: unknown {', '.join(unknown)} (preset, format, divergence, convergence)")
    options: dict[str, Any] = {}
    if raw.get("preset"):
        if raw["preset"] not in preset_names():
            raise SbsError(f"unknown preset {raw['preset']!r} (choose from {', '.join(preset_names())})")
        options["preset"] = raw["preset"]
    if raw.get("format"):
        if raw["format"] not in LAYOUTS:
            raise SbsError(f"unknown format {raw['format']!r} (choose from {', '.join(LAYOUTS)})")
        options["format"] = raw["format"]
    for name, low, high in (("divergence", 0.0, MAX_DIVERGENCE), ("convergence", 0.0, 1.0)):
        if raw.get(name) is not None:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise SbsError(f"{name}: a number from {low:g} to {high:g}")
            options[name] = float(value)
    return options


def safe_upload_name(name: str) -> PurePosixPath:
    """A dropped file's relative name made safe: no '..', no absolute or hidden parts, plain
    characters, a photo or video extension."""
    parts = [part for part in re.split(r"[\\/]+", name) if part not in ("", ".")]
    if not parts or ".." in parts or len(parts) > MAX_UPLOAD_DEPTH + 1:
        raise SbsError(f"upload name {name!r}: give a file name (folders inside a drop at most {MAX_UPLOAD_DEPTH} deep)")
    clean = [re.sub(r"[^A-Za-z0-9._ -]", "_", part).strip(" .")[:MAX_NAME_LENGTH] for part in parts]
    if any(not part for part in clean):
        raise SbsError(f"upload name {name!r}: a part of it has no usable characters")
    path = PurePosixPath(*clean)
    if path.suffix.lower() not in MEDIA_EXTENSIONS:
        raise HTTPException(415, f"upload name {name!r}: not a photo or video type ({', '.join(sorted(MEDIA_EXTENSIONS))})")
    return path


class TokenCheck:
    """Every request (pages, media, event streams) carries the access token: in the query
    (?token=, the printed URL), the page's cookie, or an Authorization: Bearer header."""

    def __init__(self, app: ASGIApp, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._carried(scope):
            await self.app(scope, receive, send)
            return
        await JSONResponse({"error": "access token missing or wrong: open the URL the server printed"},
                           status_code=401)(scope, receive, send)

    def _carried(self, scope: Scope) -> bool:
        from urllib.parse import parse_qs

        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        offered = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        if headers.get("authorization", "").startswith("Bearer "):
            offered.append(headers["authorization"][7:])
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        if TOKEN_COOKIE in cookie:
            offered.append(cookie[TOKEN_COOKIE].value)
        return any(hmac.compare_digest(value.encode(), self.token) for value in offered)


def new_token() -> str:
    return secrets.token_urlsafe(18)


async def _error(request: Request, error: Exception) -> JSONResponse:
    """Errors as JSON, one line, never a traceback page."""
    if isinstance(error, HTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)
    if isinstance(error, Forbidden):
        return JSONResponse({"error": "not found"}, status_code=404)
    if isinstance(error, SbsError):
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse({"error": f"internal error ({type(error).__name__})"}, status_code=500)


def _media(library: Library, request: Request) -> Path:
    path = library.resolve(request.path_params["root"], request.path_params["path"])
    if not path.is_file() or path.suffix.lower() not in MEDIA_EXTENSIONS:
        raise Forbidden("not a photo or video")
    return path


def _inputs(library: Library, raw: Any) -> tuple[list[dict[str, str]], list[Path]]:
    if not isinstance(raw, list) or not raw or not all(isinstance(item, dict) for item in raw):
        raise SbsError("inputs: a list of {root, path} (files or folders in the served folders)")
    inputs = [{"root": str(item.get("root", "")), "path": str(item.get("path", ""))} for item in raw]
    return inputs, [library.resolve(item["root"], item["path"]) if item["path"] else library.root(item["root"]).folder
                    for item in inputs]


def _job_view(library: Library, job: dict[str, Any]) -> dict[str, Any]:
    """A job as the page sees it: outputs as addresses in the served folders, no server paths."""
    outputs = [library.address(Path(path)) for path in job["outputs"]]
    view = {key: value for key, value in job.items() if key not in ("sources", "outputs", "cancel")}
    return {**view, "outputs": [output for output in outputs if output is not None]}


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise SbsError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise SbsError("the request body must be a JSON object")
    return body


def _free_name(target: Path) -> Path:
    """`target`, or with -2, -3... when a file of the drop already has its name."""
    candidate, number = target, 2
    while candidate.exists():
        candidate, number = target.with_name(f"{target.stem}-{number}{target.suffix}"), number + 1
    return candidate


def _too_large(limit: int) -> str:
    return f"the upload is larger than the server's limit of {limit / (1 << 20):.0f} MiB"

"""REST routes of the reconstruction service: thin wrappers over :class:`ReconstructionService`.

Blocking work (tiled, the job store) runs in ``def`` routes, i.e. FastAPI's thread pool.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ._dashboard import DASHBOARD_HTML
from ._interface import ApiError, ReconstructionRequest, ReconstructionService
from ._job_store import JOB_STATES
from ._service_settings import ServiceSettings

__all__ = ["create_app", "serve"]

API = "/api/v1"


class Problem(BaseModel):
    """Every error answer: one line naming the problem (and, for invalid requests, each field's error)."""

    detail: str = Field(..., description="what is wrong, in one line")
    errors: list[dict[str, Any]] | None = Field(None, description="invalid requests: each field's error")


_PROBLEMS = {
    401: "missing or invalid API key ('Authorization: Apikey <key>')",
    404: "no such run, reconstruction or element", 409: "the reconstruction is in the wrong state for this",
    411: "a chunked body without Content-Length", 413: "the body, or a list in it, is too large",
    422: "the request is invalid, or the run cannot be reconstructed", 429: "the queue is full",
    503: "the run catalog cannot be searched",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route (so that clients and the fuzzer know them)."""
    return {code: {"model": Problem, "description": _PROBLEMS[code]} for code in codes}


#: FastAPI's answer (400) to a JSON body it cannot decode; malformed JSON is 422 here, whatever the bytes
_FASTAPI_UNPARSABLE_BODY = "There was an error parsing the body"

#: the API key travels as tiled's does: ``Authorization: Apikey <key>`` (declared in the OpenAPI schema)
API_KEY_HEADER = APIKeyHeader(name="Authorization", auto_error=False, scheme_name="Apikey",
                              description="'Apikey <NXSCI_API_KEY>'; needed by POST and DELETE")


def create_app(settings: ServiceSettings, service: ReconstructionService | None = None) -> FastAPI:
    svc = service or ReconstructionService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio

        await anyio.to_thread.run_sync(svc.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(svc.stop)

    app = FastAPI(title="nxsci reconstruction service", version="1", lifespan=lifespan)
    app.state.service = svc

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            limit = settings.limits.max_request_bytes
            if length is None and request.headers.get("transfer-encoding"):
                return JSONResponse({"detail": "a Content-Length header is required"}, status_code=411)
            if length is not None and (not length.isdigit() or int(length) > limit):
                return JSONResponse({"detail": f"request body too large: {length} bytes > {limit}"},
                                    status_code=413)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:  # Starlette names only the first route's methods; RFC 9110 wants all
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(app, request))}
        if exc.status_code == 400 and exc.detail == _FASTAPI_UNPARSABLE_BODY:  # bytes that are not UTF-8
            return JSONResponse({"detail": "body: not valid JSON (the bytes are not UTF-8 text)"}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            messages.append(f"{loc}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(messages), "errors": jsonable_errors(exc)}, status_code=422)

    def require_api_key(authorization: str | None = Security(API_KEY_HEADER)) -> None:
        scheme, _, key = (authorization or "").partition(" ")
        expected = svc.api_key or ""
        if scheme.lower() != "apikey" or not key or not secrets.compare_digest(key.strip(), expected):
            raise ApiError(401, "missing or invalid API key: send 'Authorization: Apikey <key>'")

    def job_json(job: Any) -> dict[str, Any]:
        out = job.to_json()
        out["links"] = {"self": f"{API}/reconstructions/{job.id}"}
        return out

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"{API}/info")
    def info() -> dict[str, Any]:
        return svc.info()

    @app.get(f"{API}/methods")
    def methods() -> dict[str, Any]:
        return svc.methods()

    @app.post(f"{API}/reconstructions", status_code=201, dependencies=[Security(require_api_key)],
              responses=problems(401, 404, 411, 413, 422, 429, 503))
    def create(request: ReconstructionRequest, response: Response) -> dict[str, Any]:
        job = svc.submit(request)
        response.headers["Location"] = f"{API}/reconstructions/{job.id}"
        return job_json(job)

    @app.get(f"{API}/reconstructions", responses=problems(422))
    def list_jobs(status: Literal[JOB_STATES] | None = None) -> dict[str, Any]:  # type: ignore[valid-type]
        return {"reconstructions": [job_json(j) for j in svc.list_jobs(status)]}

    @app.get(f"{API}/reconstructions/{{job_id}}", responses=problems(404))
    def get_job(job_id: str) -> dict[str, Any]:
        return job_json(svc.get_job(job_id))

    @app.delete(f"{API}/reconstructions/{{job_id}}", status_code=202, dependencies=[Security(require_api_key)],
                responses=problems(401, 404, 409))
    def cancel(job_id: str) -> dict[str, Any]:
        return job_json(svc.cancel(job_id))

    @app.get(f"{API}/reconstructions/{{job_id}}/maps/{{element}}.png", response_class=Response,
             responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                              "description": "the element's map (viridis)"}, **problems(404, 409)})
    def element_png(job_id: str, element: str) -> Response:
        return Response(svc.element_png(job_id, element), media_type="image/png")

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return DASHBOARD_HTML

    return app


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this path (for the ``Allow`` header of a 405)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})  # PARTIAL: the path, not the method
        if match in (Match.FULL, Match.PARTIAL):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))} for e in exc.errors()]


def serve(settings: ServiceSettings) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")

"""REST routes of the reconstruction service: thin wrappers over :class:`ReconstructionService`.

Blocking work (tiled, the job store) runs in ``def`` routes, i.e. FastAPI's thread pool.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ._dashboard import DASHBOARD_HTML
from ._interface import ApiError, ReconstructionRequest, ReconstructionService
from ._service_settings import ServiceSettings

__all__ = ["create_app", "serve"]

API = "/api/v1"


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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            messages.append(f"{loc}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(messages), "errors": jsonable_errors(exc)}, status_code=422)

    def require_api_key(request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
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

    @app.post(f"{API}/reconstructions", status_code=201, dependencies=[Depends(require_api_key)])
    def create(request: ReconstructionRequest, response: Response) -> dict[str, Any]:
        job = svc.submit(request)
        response.headers["Location"] = f"{API}/reconstructions/{job.id}"
        return job_json(job)

    @app.get(f"{API}/reconstructions")
    def list_jobs(status: str | None = None) -> dict[str, Any]:
        return {"reconstructions": [job_json(j) for j in svc.list_jobs(status)]}

    @app.get(f"{API}/reconstructions/{{job_id}}")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_json(svc.get_job(job_id))

    @app.delete(f"{API}/reconstructions/{{job_id}}", status_code=202, dependencies=[Depends(require_api_key)])
    def cancel(job_id: str) -> dict[str, Any]:
        return job_json(svc.cancel(job_id))

    @app.get(f"{API}/reconstructions/{{job_id}}/maps/{{element}}.png")
    def element_png(job_id: str, element: str) -> Response:
        return Response(svc.element_png(job_id, element), media_type="image/png")

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return DASHBOARD_HTML

    return app


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))} for e in exc.errors()]


def serve(settings: ServiceSettings) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")

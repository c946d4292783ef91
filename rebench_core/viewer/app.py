"""The viewer's web app: the page in `static/` and a read-only JSON API over the runs (Starlette).

    GET /                          the runs list (the page; it routes itself)
    GET /run/RUN_DIR               one run's page
    GET /api/runs                  every run under the roots, and the studies they belong to
    GET /api/run/RUN_DIR           one run's row, config.json and summary
    GET /api/transcript/RUN_DIR    ?offset=B: the transcript items from byte offset B of events.jsonl
    GET /api/prompt/K/RUN_DIR      agent call K's whole prompt
    GET /api/scaffold/RUN_DIR      the scaffold's own view (AIDE's tree, Modular's options)
    GET /api/workspace/RUN_DIR     the ending workspace against the starting one
    GET /api/file/RUN_DIR          ?path=P: one workspace file and its diff
    GET /tree/RUN_DIR              AIDE's own scaffold/tree.html

RUN_DIR is the run directory's absolute path; only runs under the roots are served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..events import dumps
from ..transcript import full_prompt
from .live import LiveLogs
from .runs import RunIndex, _json
from .scaffolds import AIDE_TREE, scaffold_view
from .workspace import compare, file_view

STATIC = Path(__file__).parent / "static"
# Nothing from elsewhere, no inline script: text a run wrote can never run as code on the page.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TREE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")  # NaN written as null, as in the run logs


def create_app(roots: list[Path], allowed_hosts: list[str] | None = None) -> Starlette:
    index = RunIndex(roots)
    logs = LiveLogs()

    def run_dir(request: Request) -> Path | None:
        return index.find(request.path_params["rid"])

    def not_found(request: Request) -> JSON:
        return JSON({"error": f"/{request.path_params['rid'].lstrip('/')} is not a run directory under "
                              f"{', '.join(map(str, index.roots))}"}, status_code=404)

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    def runs(request: Request) -> JSON:
        found = index.catalogue()
        return JSON({"roots": [str(r) for r in found.roots], "runs": [r.to_dict() for r in found.runs.values()],
                     "studies": found.studies})

    def run(request: Request) -> JSON:
        path = run_dir(request)
        if path is None:
            return not_found(request)
        row = index.row(path)
        data: dict[str, Any] = {"row": row.to_dict(), "config": None, "summary": None, "problems": []}
        for name in ("config", "summary"):
            try:
                data[name] = _json(path / f"{name}.json")
            except (OSError, ValueError) as exc:
                data["problems"].append(f"{name}.json: {exc}")
        data["tree_html"] = (path / "scaffold" / AIDE_TREE).is_file()
        return JSON(data)

    def transcript(request: Request) -> JSON:
        path = run_dir(request)
        if path is None:
            return not_found(request)
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            return JSON({"error": "offset must be a whole number of bytes"}, status_code=400)
        row = index.row(path)
        return JSON(logs.of(path).page(offset, finished=row.status not in ("running",)) | {"status": row.status})

    def prompt(request: Request) -> JSON:
        path = run_dir(request)
        if path is None:
            return not_found(request)
        try:
            return JSON({"call": request.path_params["call"],
                         "messages": full_prompt(path, request.path_params["call"])})
        except LookupError as exc:
            return JSON({"error": str(exc)}, status_code=404)

    def scaffold(request: Request) -> JSON:
        path = run_dir(request)
        return not_found(request) if path is None else JSON(scaffold_view(path))

    def workspace(request: Request) -> JSON:
        path = run_dir(request)
        return not_found(request) if path is None else JSON(compare(path))

    def file(request: Request) -> JSON:
        path = run_dir(request)
        if path is None:
            return not_found(request)
        rel = request.query_params.get("path", "")
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            return JSON({"error": "path must be a relative path inside the workspace"}, status_code=400)
        try:
            return JSON(file_view(path, rel))
        except ValueError as exc:
            return JSON({"path": rel, "problem": str(exc)})

    def tree(request: Request) -> Response:
        path = run_dir(request)
        if path is None or not (path / "scaffold" / AIDE_TREE).is_file():
            return HTMLResponse("<p>This run has no AIDE tree (scaffold/tree.html).</p>", status_code=404)
        return FileResponse(path / "scaffold" / AIDE_TREE, media_type="text/html",
                            headers={"Content-Security-Policy": TREE_POLICY})

    routes = [
        Route("/", page), Route("/run/{rid:path}", page),
        Route("/api/runs", runs), Route("/api/run/{rid:path}", run),
        Route("/api/transcript/{rid:path}", transcript), Route("/api/prompt/{call:int}/{rid:path}", prompt),
        Route("/api/scaffold/{rid:path}", scaffold), Route("/api/workspace/{rid:path}", workspace),
        Route("/api/file/{rid:path}", file), Route("/tree/{rid:path}", tree),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    # A page elsewhere cannot reach the viewer through a name that resolves to this machine.
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"]), Middleware(_Headers)]
    return Starlette(routes=routes, middleware=middleware)


class _Headers:
    """Every response: no content sniffing, no caching (a live run changes under the same URL)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-content-type-options", b"nosniff"),
                                                                  (b"cache-control", b"no-store")]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)

"""The interactive API docs (`/docs`): Swagger UI served wholly from this origin.

FastAPI's own docs page loads Swagger UI from a CDN, which an air-gapped network cannot
reach, and starts it with an inline script, which the strict CSP of every HTML page
(`shared/http_edge.py`) refuses. So FastAPI's pages stay off (`FerrySettings.fastapi_docs`)
and this module serves the page instead, with:

- Swagger UI's script, stylesheet and icon from the installed `fastapi-offline` package
  (its `static/` folder: a recent swagger-ui-dist 5.x, which renders OpenAPI 3.1);
- a small start-up script of ours (`shared/static/swagger-init.js`), that reads the schema's
  URL from the page, in place of FastAPI's inline one.

All under `/docs/assets/`, and only when the app serves its schema (`api_docs` on, or the
demo). ReDoc stays off: it would need inline styles.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
ASSETS_URL = f"{DOCS_URL}/assets"

_SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))
_OURS = Path(__file__).parent / "static"
_JS = "text/javascript; charset=utf-8"
# name under ASSETS_URL -> (file, content type)
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_SWAGGER_UI / "swagger-ui-bundle.js", _JS),
    "swagger-ui.css": (_SWAGGER_UI / "swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": (_SWAGGER_UI / "favicon.png", "image/png"),
    "swagger-init.js": (_OURS / "swagger-init.js", _JS),
}


def docs_html(title: str, openapi_url: str, root_path: str = "") -> str:
    """The page: Swagger UI's stylesheet and scripts, no inline script or style."""

    def asset(name: str) -> str:
        return escape(f"{root_path}{ASSETS_URL}/{name}")

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - Swagger UI</title>
<link rel="stylesheet" href="{asset("swagger-ui.css")}">
<link rel="icon" type="image/png" href="{asset("favicon.png")}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(root_path + openapi_url)}"></div>
<script src="{asset("swagger-ui-bundle.js")}"></script>
<script src="{asset("swagger-init.js")}"></script>
</body>
</html>
"""


def install_api_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets when `app` serves its schema; nothing otherwise."""
    openapi_url = app.openapi_url
    if not openapi_url:
        return
    missing = [str(path) for path, _ in ASSETS.values() if not path.is_file()]
    if missing:  # a broken install: say so at start-up, not as a blank page
        raise RuntimeError(f"API docs assets missing: {', '.join(missing)}")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "")
        return HTMLResponse(docs_html(app.title, openapi_url, root_path))

    async def swagger_ui_asset(request: Request) -> FileResponse:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HTTPException(status_code=404)
        path, content_type = ASSETS[name]
        # Revalidated each time (ETag): an upgraded package is picked up at once.
        return FileResponse(path, media_type=content_type, headers={"cache-control": "no-cache"})

    # Plain routes, as FastAPI's own docs pages: not API operations, not in the schema.
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(ASSETS_URL + "/{name}", swagger_ui_asset, include_in_schema=False)

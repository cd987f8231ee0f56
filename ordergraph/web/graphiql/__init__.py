"""GraphiQL served by the service itself: the page at GET /graphql, its files under /graphiql/.

The files come from the npm packages pinned in ``package-lock.json`` next to this module,
which ``make install`` installs with ``npm ci`` into ``node_modules`` here. The page loads
nothing from any other site, so it works on a machine without internet.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
PAGE = HERE / "index.html"

# What the page asks for under /graphiql/, and where npm puts it in node_modules.
ASSETS: dict[str, str] = {
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.js.map": "graphiql/graphiql.min.js.map",
    "graphiql.min.css": "graphiql/graphiql.min.css",
    "graphiql.min.css.map": "graphiql/graphiql.min.css.map",
}


def not_installed() -> str | None:
    """Why the page cannot work (its npm packages are not installed), or None."""
    missing = [path for path in ASSETS.values() if not (NODE_MODULES / path).is_file()]
    if not missing:
        return None
    return (
        f"GraphiQL's files are not installed: {NODE_MODULES / missing[0]} is missing. "
        f"Run `make install`, or `npm ci` in {HERE}, then reload this page."
    )


def page() -> Response:
    problem = not_installed()
    if problem:
        return HTMLResponse(
            f"<!doctype html><title>GraphiQL is not installed</title><p>{html.escape(problem)}</p>",
            status_code=503,
        )
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


async def asset(request: Request) -> Response:
    path = ASSETS.get(request.path_params["name"])
    if path is None:
        return PlainTextResponse("Not Found", status_code=404)
    file = NODE_MODULES / path
    if not file.is_file():
        return PlainTextResponse(not_installed() or "Not Found", status_code=503)
    return FileResponse(file)


routes = [Route("/graphiql/{name}", asset)]

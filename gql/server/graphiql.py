"""GraphiQL served from this server's own copy of its files, pinned by version and hash.

The files come from the npm registry at build time (gql/graphiql/package-lock.json pins
them), never from a CDN at run time; the page names each with its subresource integrity
hash, so a browser runs nothing else. Without them, the page says how to install them.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

# The page and its npm lock live in gql/graphiql/, beside the two packages.
FOLDER = Path(__file__).resolve().parents[1] / "graphiql"
PAGE = FOLDER / "index.html"
DEFAULT_ASSETS = FOLDER / "node_modules"
# Served name -> (path inside node_modules, its sha384 for the page's integrity attribute).
ASSETS = {
    "react.production.min.js": (
        "react/umd/react.production.min.js",
        "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    ),
    "react-dom.production.min.js": (
        "react-dom/umd/react-dom.production.min.js",
        "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
    ),
    "graphiql.min.js": (
        "graphiql/graphiql.min.js",
        "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    ),
    "graphiql.min.css": (
        "graphiql/graphiql.min.css",
        "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
    ),
}
MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bankql GraphiQL</title></head>
<body style="font-family: sans-serif; max-width: 46em; margin: 3em auto; line-height: 1.5">
<h1>GraphiQL's files are not installed</h1>
<p>bankql serves GraphiQL from its own copy of the files, so that it works without internet
access, and that copy is missing{where}.</p>
<p>Install it with Node.js and npm, from the project folder:</p>
<pre>npm ci --prefix gql/graphiql --ignore-scripts</pre>
<p>(<code>python3 dev.py serve</code> does this by itself when npm is installed), then reload.
The API itself works meanwhile: POST GraphQL requests to <code>/graphql</code>.</p>
</body></html>
"""


class GraphiQLAssets:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder or DEFAULT_ASSETS

    def installed(self) -> bool:
        return all((self.folder / path).is_file() for path, _ in ASSETS.values())

    def page(self) -> HTMLResponse:
        if not self.installed():
            return HTMLResponse(MISSING.format(where=f" from {self.folder}"), status_code=503)
        html = PAGE.read_text()
        for name, (_, integrity) in ASSETS.items():
            html = html.replace("{{" + name + "}}", integrity)
        return HTMLResponse(html)

    async def asset(self, request: Request) -> Response:
        found = ASSETS.get(request.path_params["name"])
        if found is None or not (self.folder / found[0]).is_file():
            return PlainTextResponse("Not found", status_code=404)
        return FileResponse(
            self.folder / found[0], headers={"Cache-Control": "public, max-age=86400"}
        )

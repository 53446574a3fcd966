"""API routers whose JSON bodies are decoded strictly (orjson, as the ingest route does).

The standard decoder accepts JSON that cannot be stored: lone surrogates (`"\\ud800"`), which no UTF-8
text can hold, and numbers beyond a double (`1e309`), which become infinity, which JSONB refuses. Both
then failed deep in the database driver with a 500. orjson refuses them (and invalid UTF-8, and
nesting deeper than 1,024) with a `json.JSONDecodeError`, which FastAPI answers 422 like any malformed
JSON body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def api_router(**kwargs: Any) -> APIRouter:
    """An `APIRouter` for the JSON API (strict JSON bodies)."""
    return APIRouter(route_class=StrictJSONRoute, **kwargs)

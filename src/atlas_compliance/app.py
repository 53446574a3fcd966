"""The FastAPI application: API routers, console, error envelope, request ids."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .api import auth as auth_routes
from .api import docs_ui, health
from .api.errors import install_error_handlers
from .api.middleware import RequestContextMiddleware
from .audit.analysis import AnalysisPool, budget_of
from .config import Settings, get_settings
from .db.pool import Database

API_DESCRIPTION = """
Atlas Compliance turns an audit trail of SQL queries into SOC 2 / HIPAA evidence.

Authenticate with `Authorization: Bearer <token>`: a login session token (`POST /api/v1/auth/login`),
a personal access token, or (for `POST /api/v1/audit/events` only) an ingest key. Admin routes need
role `admin` or `owner` in the credential's organization; the organization always comes from the
credential. Every error answers `{error, message, requestId}`.
"""


def create_app(db: Database, settings: Settings | None = None, *, manage_pool: bool = False) -> FastAPI:
    """Build the app around a :class:`Database`.

    With ``manage_pool`` the app opens the pool at startup and closes it at shutdown (tests, ASGI
    servers started by others); otherwise the caller owns the pool.
    """
    settings = settings or get_settings()
    analysis = analysis_pool(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_pool:
            await db.open()
        try:
            yield
        finally:
            try:
                await asyncio.to_thread(analysis.shutdown, True, cancel_futures=True)
            finally:
                if manage_pool:
                    await db.close()

    app = FastAPI(
        title="Atlas Compliance",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by api.docs_ui from the package's own assets, under the CSP
        redoc_url=None,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.analysis = analysis  # SQL analysis of ingested events; its workers start on first use
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth_routes.router)
    _include_optional_routers(app)
    docs_ui.install(app)
    from fastapi.staticfiles import StaticFiles

    from .console.routes import STATIC_DIR

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.add_middleware(RequestContextMiddleware)
    return app


def analysis_pool(settings: Settings) -> AnalysisPool:
    """The pool that analyses ingested SQL, sized and budgeted by the settings (not started yet)."""
    return AnalysisPool(settings.parse_workers or None, budget_of(settings))


def _include_optional_routers(app: FastAPI) -> None:
    """Routers of the other domains, each registered by its own module."""
    from .api import registry

    for router in registry.routers():
        app.include_router(router)

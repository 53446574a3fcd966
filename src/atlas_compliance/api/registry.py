"""The list of API (and console) routers mounted by the app, one line per domain."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from ..console import routes as console
    from . import (
        activity,
        admin,
        audit,
        catalog,
        classifications,
        events,
        evidence,
        flags,
        reports,
        reviews,
        sources,
    )

    return [admin.router, audit.router, events.router, activity.router, reports.router, reports.volume_router, evidence.router,
            classifications.router, sources.router, catalog.router, reviews.router, reviews.settings_router,
            flags.router, console.router]

"""Python client for Atlas Compliance: send audit events, instrument SQLAlchemy engines (docs/client.md)."""

from .audit_client import AuditClient, AuditClientError, AuditQueueFull, ClientStats, FailedEvent
from .sqlalchemy import EngineInstrumentation, instrument_engine

__all__ = ["AuditClient", "AuditClientError", "AuditQueueFull", "ClientStats", "EngineInstrumentation",
           "FailedEvent", "instrument_engine"]

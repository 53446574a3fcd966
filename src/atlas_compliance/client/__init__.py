"""Python client for Atlas Compliance: send audit events, instrument SQLAlchemy engines."""

from .audit_client import AuditClient, AuditClientError, AuditQueueFull, ClientStats
from .sqlalchemy import InstrumentationHandle, instrument_engine

__all__ = ["AuditClient", "AuditClientError", "AuditQueueFull", "ClientStats", "InstrumentationHandle",
           "instrument_engine"]

"""Atlas Compliance: SQL audit trail to SOC 2 / HIPAA evidence."""
__version__ = "0.1.0"

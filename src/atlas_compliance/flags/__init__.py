"""Unusual-access flags (issue 21): explainable findings on PII reads, from the rollups; see docs/flags.md."""

"""PII classification models (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from ..audit.extraction import normalize_table_name

# The ids of ``categories.CATEGORIES``, spelled out for the OpenAPI document (a test keeps them equal).
Category = Literal["email", "phone", "ssn", "national_id", "credit_card", "bank_account", "swift_bic", "name",
                   "ip_address", "date_of_birth", "age", "gender", "address", "passport", "driver_license",
                   "vehicle_id", "medical_record_number", "health_plan_id", "diagnosis_code", "medication",
                   "lab_result", "other"]
Strategy = Literal["full", "partial", "hash", "redact"]
Confidence = Literal["high", "medium", "low"]
Method = Literal["regex", "column_name", "type_heuristic", "manual", "external"]


class Classification(BaseModel):
    id: str
    tableName: str
    columnName: str
    connectionGroupId: str | None
    category: str
    confidence: str
    maskingStrategy: str
    reviewed: bool
    dismissed: bool
    method: str | None
    reason: str | None
    evidence: dict[str, Any] | None
    sourceId: str | None
    createdAt: datetime
    updatedAt: datetime


class ClassificationList(BaseModel):
    classifications: list[Classification]
    summary: dict[str, int] = Field(description="total, highConfidence, unreviewed, tablesAffected, dismissed")


class ClassificationUpdate(BaseModel):
    """Only the fields sent are changed; an explicit null is refused."""

    model_config = ConfigDict(extra="forbid")
    category: Category | None = None
    maskingStrategy: Strategy | None = None
    reviewed: StrictBool | None = None
    dismissed: StrictBool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ClassificationUpdate:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} must not be null")
        return self


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = Field(default=None, max_length=10_000,
                                  description="Classifications to mark reviewed; omit to mark every pending one.")


class ReviewResult(BaseModel):
    reviewed: int


class DetectionIn(BaseModel):
    """One detection from an external profiler."""

    model_config = ConfigDict(extra="forbid")
    tableName: str = Field(min_length=1, max_length=500)
    columnName: str = Field(min_length=1, max_length=500)
    category: Category
    confidence: Confidence = "medium"
    maskingStrategy: Strategy | None = None
    method: Method = "external"
    reason: str | None = Field(default=None, max_length=2000)
    evidence: dict[str, Any] | None = None
    sourceId: str | None = Field(default=None, max_length=500)
    connectionGroupId: str | None = Field(default=None, max_length=500)

    @field_validator("tableName")
    @classmethod
    def _names_a_table(cls, value: str) -> str:
        """Blank or punctuation-only names (`"  "`, `"."`) would be stored as a table called ''."""
        if not _normalized(value):
            raise ValueError("tableName names no table, e.g. 'patients' or 'billing.invoices'")
        return value

    @field_validator("columnName")
    @classmethod
    def _names_a_column(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("columnName is blank")
        return value

    @field_validator("evidence")
    @classmethod
    def _shallow_evidence(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Evidence nested deeper than the JSON encoder can recurse failed at storage with a 500."""
        if value is not None and _depth(value) > MAX_EVIDENCE_DEPTH:
            raise ValueError(f"evidence is nested deeper than {MAX_EVIDENCE_DEPTH} levels")
        return value


MAX_EVIDENCE_DEPTH = 32
# An upload of 10,000 detections names a few tables thousands of times.
_normalized = lru_cache(maxsize=4096)(normalize_table_name)


def _flat(value: Any) -> bool:
    """An object whose values are scalars or arrays of scalars (the usual evidence): depth at most 2."""
    for item in value.values():
        if isinstance(item, dict) or (isinstance(item, list) and any(isinstance(x, dict | list) for x in item)):
            return False
    return True


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest (a scalar is 0); stops counting past the limit."""
    if isinstance(value, dict) and _flat(value):
        return 2
    level, current = 0, [value]
    while level <= MAX_EVIDENCE_DEPTH:
        containers = [item for item in current if isinstance(item, (dict, list))]
        if not containers:
            break
        level += 1
        current = [v for c in containers for v in (c.values() if isinstance(c, dict) else c)]
    return level


class ManualClassificationIn(BaseModel):
    """A column the scanner missed, added by an admin."""

    model_config = ConfigDict(extra="forbid")
    tableName: str = Field(min_length=1, max_length=500, description="Table, normalized like stored names.")
    columnName: str = Field(min_length=1, max_length=500)
    category: Category
    maskingStrategy: Strategy | None = Field(default=None, description="Default: the category's default masking.")
    note: str | None = Field(default=None, max_length=2000, description="Why: kept in the classification's reason.")
    connectionGroupId: str | None = Field(default=None, max_length=500)

    _names_a_table = field_validator("tableName")(DetectionIn._names_a_table.__func__)  # type: ignore[attr-defined]
    _names_a_column = field_validator("columnName")(DetectionIn._names_a_column.__func__)  # type: ignore[attr-defined]


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detections: list[DetectionIn] = Field(max_length=10_000)


class UpsertResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    keptReviewed: int = Field(description="Reviewed or dismissed classifications the upload did not overwrite.")


class DeleteResult(BaseModel):
    deleted: bool

"""PII classification models (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

Category = Literal["email", "phone", "ssn", "credit_card", "name", "ip_address", "date_of_birth", "address",
                   "passport", "driver_license", "other"]
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

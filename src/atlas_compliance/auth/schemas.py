"""Auth request/response models and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["owner", "admin", "member"]
ROLES: tuple[str, ...] = ("owner", "admin", "member")
ADMIN_ROLES = frozenset({"owner", "admin"})
CredentialKind = Literal["session", "personal", "ingest"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which organization, with which rights. The org always comes from here."""

    kind: CredentialKind
    credential_id: str
    org_id: str
    org_slug: str
    org_name: str
    user_id: str | None = None
    email: str | None = None
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.kind != "ingest" and self.role in ADMIN_ROLES

    def can(self, scope: str) -> bool:
        return scope in self.scopes


class CamelModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class LoginRequest(CamelModel):
    email: str = Field(min_length=3, max_length=320, examples=["admin@acme-health.example"])
    password: str = Field(min_length=1, max_length=1024)
    org: str | None = Field(default=None, max_length=100, description="Organization slug; needed only "
                            "when the user belongs to several organizations.")


class UserOut(BaseModel):
    id: str
    email: str
    name: str


class OrganizationOut(BaseModel):
    id: str
    slug: str
    name: str


class LoginResponse(BaseModel):
    token: str = Field(description="Bearer token; shown once. Send as `Authorization: Bearer <token>`.")
    expiresAt: datetime
    user: UserOut
    organization: OrganizationOut
    role: Role


class MeResponse(BaseModel):
    user: UserOut | None
    organization: OrganizationOut
    role: Role | None
    credential: CredentialKind
    scopes: list[str]


class LogoutResponse(BaseModel):
    revoked: bool


class TokenCreated(BaseModel):
    id: str
    token: str
    kind: Literal["personal", "ingest"]
    name: str
    expiresAt: datetime | None


class MemberOut(BaseModel):
    userId: str
    email: str
    name: str
    role: str


class MembersResponse(BaseModel):
    members: list[MemberOut]

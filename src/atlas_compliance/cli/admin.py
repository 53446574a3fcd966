"""`orgs`, `users`, `members`, `tokens`: bootstrap organizations and credentials."""

from __future__ import annotations

import typer

from ..audit import admin_actions
from ..audit.admin_actions import CLI_ACTOR
from ..auth import offboarding
from ..auth import service as auth
from .common import console, fail, out, read_secret_stdin, run_db

orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
users_app = typer.Typer(help="Users (with a password, in one organization).", no_args_is_help=True)
members_app = typer.Typer(help="Memberships of existing users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal access tokens and ingest keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(users_app, name="users")
    app.add_typer(members_app, name="members")
    app.add_typer(tokens_app, name="tokens")


@orgs_app.command("create")
def orgs_create(slug: str = typer.Argument(..., help="Short id, e.g. acme-health."),
                name: str = typer.Option(..., "--name", help='Display name, e.g. "Acme Health".')) -> None:
    """Create an organization."""
    async def work(db):
        async with db.transaction() as conn:
            return await auth.create_organization(conn, slug, name)
    org = run_db(work)
    typer.echo(f"created organization {org['slug']} ({org['name']}), id {org['id']}")


@orgs_app.command("list")
def orgs_list() -> None:
    """List organizations with their member counts."""
    async def work(db):
        async with db.transaction() as conn:
            return await auth.list_organizations(conn)
    for org in run_db(work):
        typer.echo(f"{org['slug']}\t{org['name']}\t{org['members']} members\t{org['id']}")


@users_app.command("create")
def users_create(
    email: str = typer.Argument(..., help="Login email."),
    org: str = typer.Option(..., "--org", help="Organization slug."),
    role: str = typer.Option(..., "--role", help="owner, admin or member."),
    name: str = typer.Option(None, "--name", help="Display name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Create a user with a password and add them to an organization. Prompts twice for the password."""
    if role not in ("owner", "admin", "member"):
        fail(f"invalid role {role!r}: use one of owner, admin, member")
    if password_stdin:
        password = read_secret_stdin()
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def work(db):
        async with db.transaction() as conn:
            user = await auth.create_user(conn, email=email, password=password, org_slug=org, role=role,
                                          name=name)
            await admin_actions.record(conn, CLI_ACTOR, org_id=user["org"]["id"], action_type="member.user_created",
                                       target_type="user", target_id=user["id"],
                                       details={"email": user["email"], "role": role})
            return user
    user = run_db(work)
    typer.echo(f"created user {user['email']} as {role} of {org}, id {user['id']}")


@users_app.command("disable")
def users_disable(email: str = typer.Argument(..., help="Email of the user.")) -> None:
    """Offboard a user everywhere: end every membership, revoke every session and token, mark them banned.

    Their past rows keep their name in reports (membership history). The last owner of an organization
    cannot be disabled: make someone else owner first.
    """
    async def work(db):
        async with db.transaction() as conn:
            done = await offboarding.disable_user(conn, email=email)
            for m in done["memberships"]:
                await admin_actions.record(
                    conn, CLI_ACTOR, org_id=m["orgId"], action_type="user.disable", target_type="user",
                    target_id=done["userId"], details={"email": done["email"], "previousRole": m["role"]})
            return done
    done = run_db(work)
    orgs = ", ".join(f"{m['org']} ({m['role']})" for m in done["memberships"]) or "no organization"
    typer.echo(f"disabled {done['email']}: removed from {orgs}; every session and token revoked")


@users_app.command("set-password")
def users_set_password(
        email: str = typer.Argument(..., help="Email of the user (any case)."),
        password_stdin: bool = typer.Option(False, "--password-stdin",
                                            help="Read the password from the first line of standard input "
                                                 "(for scripts); otherwise it is asked for, twice, unseen.")) -> None:
    """Set a user's password (at least 8 characters); recorded as an admin action in each of their orgs.

    A user of an adopted Atlas database keeps Better Auth's hash format, so the new password works in
    Atlas too; every other user gets Argon2id.
    """
    if password_stdin:
        password = read_secret_stdin()
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def work(db):
        async with db.transaction() as conn:
            done = await auth.set_user_password(conn, email=email, password=password)
            for m in await auth.list_memberships(conn, done["userId"]):
                await admin_actions.record(conn, CLI_ACTOR, org_id=m["id"], action_type="user.password_set",
                                           target_type="user", target_id=done["userId"],
                                           details={"email": done["email"], "format": done["format"]})
            return done
    done = run_db(work)
    typer.echo(f"password set for {done['email']} ({done['format']})")


@members_app.command("add")
def members_add(email: str = typer.Argument(..., help="Email of an existing user."),
                org: str = typer.Option(..., "--org", help="Organization slug."),
                role: str = typer.Option(..., "--role", help="owner, admin or member.")) -> None:
    """Add an existing user to an organization, or change their role there."""
    async def work(db):
        async with db.transaction() as conn:
            member = await auth.add_member(conn, email=email, org_slug=org, role=role)
            await admin_actions.record(conn, CLI_ACTOR, org_id=member["org"]["id"], action_type="member.role_set",
                                       target_type="user", target_id=member["user_id"],
                                       details={"email": member["email"], "role": member["role"]})
            return member
    member = run_db(work)
    typer.echo(f"{member['email']} is now {member['role']} of {org}")


@members_app.command("remove")
def members_remove(email: str = typer.Argument(..., help="Email of the member."),
                   org: str = typer.Option(..., "--org", help="Organization slug.")) -> None:
    """Remove a member: their sessions and personal tokens there are revoked; past reports keep their name.

    The membership is not erased: its history (from when to when, with which role) stays, so reports of
    past windows still show the person as they were. The last owner cannot be removed.
    """
    async def work(db):
        async with db.transaction() as conn:
            done = await offboarding.remove_member(conn, email=email, org_slug=org)
            await admin_actions.record(
                conn, CLI_ACTOR, org_id=done["orgId"], action_type="member.remove", target_type="member",
                target_id=done["userId"], details={"email": done["email"], "previousRole": done["role"]})
            return done
    done = run_db(work)
    typer.echo(f"{done['email']} is no longer a member of {org} (was {done['role']}); revoked "
               f"{done['sessionsRevoked']} session(s) and {done['tokensRevoked']} token(s)")


@tokens_app.command("create")
def tokens_create(
    org: str = typer.Option(..., "--org", help="Organization slug."),
    user: str = typer.Option(None, "--user", help="Email: create a personal access token acting as this user."),
    ingest: bool = typer.Option(False, "--ingest", help="Create an ingest key (audit:write only)."),
    name: str = typer.Option(None, "--name", help="Label for the token (required for --ingest)."),
    expires_in: str = typer.Option(None, "--expires-in", help="Lifetime, e.g. 30d, 12h; default: no expiry."),
) -> None:
    """Create a personal access token (--user) or an ingest key (--ingest). The token is printed once."""
    if bool(user) == bool(ingest):
        fail("give exactly one of --user EMAIL (personal token) or --ingest (ingest key)")
    if ingest and not name:
        fail("an ingest key needs --name, e.g. --name warehouse-proxy")
    try:
        seconds = auth.parse_duration(expires_in) if expires_in else None
    except auth.BadRequest as exc:
        fail(exc.message)

    async def work(db):
        async with db.transaction() as conn:
            if ingest:
                created = await auth.create_ingest_key(conn, org_slug=org, name=name, expires_in_seconds=seconds,
                                                       created_by="cli")
            else:
                created = await auth.create_personal_token(conn, org_slug=org, email=user, name=name,
                                                           expires_in_seconds=seconds, created_by="cli")
            found = await auth.get_organization(conn, org)
            await admin_actions.record(conn, CLI_ACTOR, org_id=found["id"], action_type="token.created",
                                       target_type="api_token", target_id=str(created["id"]),
                                       details={"kind": created["kind"], "name": created["name"], "user": user,
                                                "expiresInSeconds": seconds})
            return created
    created = run_db(work)
    console.print(f"created {created['kind']} token {created['id']}"
                  + (f", expires {created['expiresAt']:%Y-%m-%d %H:%M}Z" if created["expiresAt"] else "")
                  + " — store it now, it is not shown again:")
    out.print(created["token"], highlight=False)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str = typer.Argument(..., help="The token's id (not the token itself).")) -> None:
    """Revoke a personal access token or ingest key."""
    async def work(db):
        async with db.transaction() as conn:
            row = await auth.revoke_token(conn, token_id)
            await admin_actions.record(conn, CLI_ACTOR, org_id=row["org_id"], action_type="token.revoked",
                                       target_type="api_token", target_id=str(row["id"]),
                                       details={"kind": row["kind"], "name": row["name"]})
            return row
    row = run_db(work)
    typer.echo(f"revoked {row['kind']} token {row['id']} ({row['name']})")


@tokens_app.command("list")
def tokens_list(org: str = typer.Option(..., "--org", help="Organization slug.")) -> None:
    """List the tokens of an organization (never the tokens themselves)."""
    async def work(db):
        async with db.transaction() as conn:
            found = await auth.get_organization(conn, org)
            return await auth.list_api_tokens(conn, found["id"])
    for t in run_db(work):
        state = "revoked" if t["revoked_at"] else "active"
        typer.echo(f"{t['id']}\t{t['kind']}\t{t['name']}\t{t['token_prefix']}…\t{state}\t{t['email'] or ''}")

"""The reference docs name what exists: every command and option of docs/cli.md is in the Typer app, and
docs/api.md lists exactly the endpoints of the OpenAPI document (issue 23). No database is needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from atlas_compliance.app import create_app
from atlas_compliance.cli.main import app as cli_app
from atlas_compliance.db.pool import Database

DOCS = Path(__file__).resolve().parent.parent / "docs"
SPAN = re.compile(r"`([^`]+)`")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
ENDPOINT = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`?]*)")


def commands() -> dict[tuple[str, ...], object]:
    """Every command path of the CLI (the root is ``()``), walked from the Typer app."""
    found: dict[tuple[str, ...], object] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, path + (name,))

    walk(typer.main.get_command(cli_app), ())
    return found


def options(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names |= set(param.opts) | set(getattr(param, "secondary_opts", ()))
    return {name for name in names if name.startswith("-")}


def cli_mentions() -> list[tuple[int, str, list[str]]]:
    """(line, command line, options written with it): each `atlas-compliance ...` in a backtick span or a
    code block, with the options of the row's other spans that start with one (`--rerun`, `--since`): a
    table row describes its command. Spans such as `pg_dump --schema-only` or `audit verify --public-key`
    name another program's or command's options."""
    found = []
    in_block = False
    for number, line in enumerate((DOCS / "cli.md").read_text().splitlines(), 1):
        if line.startswith("```"):
            in_block = not in_block
            continue
        texts = [line] if in_block else [s.replace("\\|", "|") for s in SPAN.findall(line)]
        invocations = [t for t in texts if t.startswith("atlas-compliance")]
        for text in invocations:
            written = OPTION.findall(text)
            if line.startswith("|") and text == invocations[0]:
                written += [o for t in texts if t.startswith("-") for o in OPTION.findall(t)]
            found.append((number, text, written))
    return found


def resolve(text: str, known: dict) -> tuple[str, ...]:
    """The longest command path the words after `atlas-compliance` name."""
    path: tuple[str, ...] = ()
    for word in text.split()[1:]:
        if path + (word,) not in known:
            break
        path += (word,)
    return path


def test_cli_doc_names_real_commands_and_options():
    known = commands()
    mentions = cli_mentions()
    assert len(mentions) > 50, "cli.md's commands were not found: the parser is out of step with the page"
    wrong = []
    for number, text, written in mentions:
        path = resolve(text, known)
        words = text.split()[1:]
        following = words[len(path)] if len(words) > len(path) else ""
        if following and re.fullmatch(r"[a-z][a-z-]*", following) and getattr(known[path], "commands", None):
            wrong.append(f"cli.md:{number}: no command {' '.join(path + (following,))!r}")
            continue
        missing = sorted(set(written) - options(known[path]))
        if missing:
            wrong.append(f"cli.md:{number}: {' '.join(('atlas-compliance',) + path)} has no {', '.join(missing)}")
    assert not wrong, "\n".join(wrong)


def test_every_option_written_in_cli_doc_exists_somewhere():
    """Options in prose (``--reviewer EMAIL``) belong to some command."""
    every = set().union(*(options(c) for c in commands().values()))
    text = (DOCS / "cli.md").read_text().replace("\\|", "|")
    written = {o for span in SPAN.findall(text) for o in OPTION.findall(span)}
    assert written and not written - every, sorted(written - every)


def test_every_command_and_option_is_in_cli_doc():
    """The reverse: each command is in cli.md with each of its options (under one of its names). A
    `[same options]` or `[…]` mention has the options of the mention above it."""
    known, documented = commands(), {}
    previous: set[str] = set()
    for _, text, written in cli_mentions():
        inherited = previous if ("[same options]" in text or "[…]" in text) else set()
        previous = documented.setdefault(resolve(text, known), set())
        previous |= set(written) | inherited
    missing = []
    for path, command in known.items():
        if path and not getattr(command, "commands", None):
            if path not in documented:
                missing.append(" ".join(path))
                continue
            for param in command.params:
                names = set(param.opts) | set(getattr(param, "secondary_opts", ()))
                if param.param_type_name == "option" and not names & documented[path]:
                    missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert not missing, f"not in docs/cli.md: {missing}"


@pytest.fixture(scope="module")
def openapi_endpoints() -> set[tuple[str, str]]:
    document = create_app(Database("postgresql://openapi-only.invalid/none")).openapi()
    return {(method.upper(), shape(path)) for path, ops in document["paths"].items() for method in ops}


def shape(path: str) -> str:
    """A path with its parameters' names left out: the docs may call ``{cid}`` ``{id}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def api_doc_endpoints() -> set[tuple[str, str]]:
    """Every `METHOD /path` of docs/api.md; a path outside /api and the health checks is under /api/v1."""
    found = set()
    for span in SPAN.findall((DOCS / "api.md").read_text()):
        for method, path in ENDPOINT.findall(span):
            if not path.startswith(("/api/", "/healthz", "/readyz")):
                path = "/api/v1" + path
            found.add((method, shape(path)))
    return found


def test_every_endpoint_in_api_doc_is_served(openapi_endpoints):
    documented = api_doc_endpoints()
    assert len(documented) > 30
    assert not documented - openapi_endpoints, sorted(documented - openapi_endpoints)


def test_every_served_endpoint_is_in_api_doc(openapi_endpoints):
    missing = openapi_endpoints - api_doc_endpoints()
    assert not missing, f"not in docs/api.md: {sorted(missing)}"


def test_every_api_endpoint_named_in_any_doc_is_served(openapi_endpoints):
    """The other pages (reports.md, evidence.md, README.md, ...) name endpoints too: each `METHOD /api/...`
    of them is served. Console pages (`GET /admin/...`) are not API endpoints and are left out."""
    pages = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]
    wrong = [f"{page.name}: {method} {path}" for page in pages for span in SPAN.findall(page.read_text())
             for method, path in ENDPOINT.findall(span)
             if path.startswith("/api/") and (method, shape(path)) not in openapi_endpoints]
    assert not wrong, wrong

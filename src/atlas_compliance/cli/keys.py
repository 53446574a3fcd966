"""`keys show`: the installation's checkpoint signing key."""

from __future__ import annotations

import typer

from ..audit import signing
from ..config import get_settings
from ..errors import AtlasError
from .common import fail

keys_app = typer.Typer(help="The Ed25519 key that signs checkpoints.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


@keys_app.command("show")
def show(pem: bool = typer.Option(False, "--pem", help="Print only the public key in PEM, for a file.")) -> None:
    """Print the public key and key id of the key that signs checkpoints.

    The key is ATLAS_SIGNING_KEY (a PEM file) if set, else ATLAS_DATA_DIR/signing-key.pem, generated on
    first use (mode 0600). Keep a copy of the public key away from this host: `audit verify --checkpoint
    ... --public-key FILE` checks checkpoints against it.
    """
    try:
        key = signing.load_signing_key(get_settings())
    except AtlasError as exc:
        fail(exc.message)
    if pem:
        typer.echo(signing.public_pem(key.public), nl=False)
        return
    typer.echo(f"key id:     {key.key_id}")
    typer.echo("algorithm:  Ed25519")
    typer.echo(f"private key: {key.path}" + (" (generated now)" if key.generated else ""))
    typer.echo(f"public key (base64, raw 32 bytes): {signing.public_base64(key.public)}")
    typer.echo(signing.public_pem(key.public), nl=False)

"""The installation's Ed25519 signing key, used to sign checkpoints of the hash chains.

The key is read from ``ATLAS_SIGNING_KEY`` (a PEM file holding an unencrypted PKCS#8 Ed25519 private key),
or else from ``ATLAS_DATA_DIR/signing-key.pem``, which is generated on first use with mode 0600.
The key id is the first 16 hex digits of the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..config import Settings
from ..errors import AtlasError

KEY_FILE = "signing-key.pem"


class SigningKeyError(AtlasError):
    """The signing key cannot be read or is not an Ed25519 private key (an installation problem)."""

    status, code = 500, "signing_key_unavailable"


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_base64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)).decode("ascii")


@dataclass(frozen=True)
class VerifyingKey:
    public: Ed25519PublicKey
    key_id: str

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path
    generated: bool  # created by this call

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    def verifying(self) -> VerifyingKey:
        return VerifyingKey(self.public, self.key_id)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def _parse_private(data: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"the signing key {path} is not an unencrypted PEM private key") from None
    except Exception as exc:  # cryptography.exceptions.UnsupportedAlgorithm and kin
        raise SigningKeyError(f"the signing key {path} cannot be loaded: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the signing key {path} is a {type(key).__name__.removeprefix('_')}, "
                              "not an Ed25519 private key")
    return key


def _read(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
    return _parse_private(data, path)


def _generate(path: Path) -> bool:
    """Write a new key to ``path`` (mode 0600) unless one is there; True when this call created it.

    The key is written to a temporary file and linked into place, so that a concurrent reader never
    sees a half-written key and two processes starting together end up with the same key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=".signing-key-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def load_signing_key(settings: Settings, *, create: bool = True) -> SigningKey:
    """The installation's key: ``ATLAS_SIGNING_KEY`` if set, else the data directory's (generated if absent)."""
    if settings.signing_key is not None:
        path = Path(settings.signing_key).expanduser()
        return SigningKey(_read(path), path, False)
    path = Path(settings.data_dir).expanduser().resolve() / KEY_FILE
    generated = False
    if not path.exists():
        if not create:
            raise SigningKeyError(f"no signing key yet: {path} does not exist (set ATLAS_SIGNING_KEY, "
                                  "or run `atlas-compliance keys show` once to generate it)")
        try:
            generated = _generate(path)
        except OSError as exc:
            raise SigningKeyError(f"cannot create the signing key {path}: {exc.strerror or exc}") from None
    return SigningKey(_read(path), path, generated)


def load_public_key(path: Path) -> VerifyingKey:
    """A public key kept apart from the installation (PEM SubjectPublicKeyInfo, or a private key's PEM)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the public key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = _parse_private(data, path).public_key()
    except Exception as exc:
        raise SigningKeyError(f"the public key {path} cannot be loaded: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"the public key {path} is not an Ed25519 public key")
    return VerifyingKey(key, key_id_of(key))

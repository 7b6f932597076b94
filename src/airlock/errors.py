"""One error hierarchy for all of airlock.

Every failure a user can meet is an :class:`AirlockError` whose ``str()`` is a single line that
names what failed (artifact, digest, blob URI, credential) and why. Edges translate them: the CLI
prints ``error: <message>`` and exits non-zero; the API (later) maps them to the ARM error
envelope, naming the class in ``additionalInfo`` so that the CLI raises the same class again on the
other side of the REST hop (:func:`error_class`). No message may contain a secret: adapters redact URLs
before they build messages.

::

    AirlockError
    ├── UsageError                  bad input from the user (flags, URIs, references)
    │   ├── ReferenceError_         an artifact reference that does not parse
    │   └── SigningKeyError         a signing or trusted key that cannot be used
    ├── RegistryError               the registry answered with an error
    │   ├── AuthenticationError     401 / token exchange failed
    │   ├── PermissionDenied        403
    │   ├── NotFound                404 (manifest, blob, repository)
    │   └── TagConflict             tag exists elsewhere and OverwriteTags is off
    ├── IntegrityError              bytes do not match their digest or size
    │   ├── SignatureRefused        an artifact lacks a valid signature the import requires
    │   └── AuditChainBroken        an audit trail's hash chain does not verify (names the entry)
    ├── ArchiveError                the transfer blob is malformed or hostile
    │   └── NotATransferBlob        it is something else (gzip, docker save, another tool's OCI layout...)
    ├── StorageError                blob storage failed
    │   ├── StorageAuthError        SAS expired/invalid, wrong key, or missing permission
    │   │   └── MissingCredential   no SAS token and no usable Azure identity for the blob
    │   ├── BlobExists              target exists and OverwriteBlobs is off
    │   └── BlobNotFound            source blob or container missing
    ├── SecretError                 a secret could not be read
    │   ├── SecretNotFound          no such vault, secret or version
    │   └── SecretAccessDenied      the principal lacks a vault permission
    ├── ResourceNotFound            a control-plane resource (pipeline, run, registry...) does not exist
    ├── ResourceConflict            the request conflicts with the resource's state
    ├── AccessDenied                the API caller lacks the role for the operation
    ├── BundleNotTrusted            refused by the trusted keys, before any upload
    │   ├── BundleUnsigned          ... because it carries no signature
    │   ├── BundleSignedByUntrustedKey   ... signed by another key
    │   └── BundleSignatureInvalid  ... altered after signing
    └── TransferFailed              one or more artifacts failed (carries the per-artifact errors)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

# Every class of the tree by name, filled as classes are defined (AirlockError.__init_subclass__);
# None marks a name two classes share, which therefore names neither.
_BY_NAME: dict[str, type[AirlockError] | None] = {}


def error_class(name: str) -> type[AirlockError] | None:
    """The class of the error tree called ``name`` (``"BlobExists"``), None for any other name.

    The API names an error's class in its ARM envelope; the CLI looks it up here to raise the same
    class, and so exit with the same code, as it would have without the REST hop. Every subclass
    counts, wherever it is defined, as long as its module has been imported.
    """
    return _BY_NAME.get(name)


class AirlockError(Exception):
    """Root of every error airlock raises on purpose.

    ``transient`` is True when retrying the same operation later may succeed (network faults,
    5xx, 429); retry loops consult it, never the message. Every subclass can be built from its
    message alone (its other arguments have defaults), so an edge can rebuild one by class name.
    """

    transient: bool = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME[cls.__name__] = None if cls.__name__ in _BY_NAME else cls

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


_BY_NAME[AirlockError.__name__] = AirlockError


class UsageError(AirlockError):
    """The user's input is wrong: a flag, a URI, a reference, an option name."""


class ReferenceError_(UsageError):
    """An artifact or registry reference does not parse."""


class RegistryError(AirlockError):
    """A registry request failed. ``status`` is the HTTP status, 0 for a connection failure."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        codes: Sequence[str] = (),
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, transient=transient)
        self.status = status
        self.codes = tuple(codes)


class AuthenticationError(RegistryError):
    """The registry refused our credentials, or we had none and it needs some."""


class PermissionDenied(RegistryError):
    """The registry knows who we are but refuses the operation."""


class NotFound(RegistryError):
    """A manifest, blob, tag or repository does not exist."""


class TagConflict(RegistryError):
    """A tag in the target already names other content and OverwriteTags is not set."""


class IncompleteIndexRefused(RegistryError):
    """The target registry refuses an index that travelled without some platforms' manifests."""


class IntegrityError(AirlockError):
    """Bytes did not match the digest or size they were promised to have."""


class SignatureRefused(IntegrityError):
    """An import's signature policy refuses an artifact: no signature, an untrusted key, a payload of
    another digest or repository (the message names the artifact, its digest and why)."""


class AuditChainBroken(IntegrityError):
    """The audit trail's hash chain breaks: an entry was edited, inserted or deleted (the message names it)."""


class ArchiveError(AirlockError):
    """The transfer blob is not a well-formed airlock archive (or is hostile)."""


class NotATransferBlob(ArchiveError):
    """The blob is not an airlock transfer archive at all. ``kind`` says what it looks like (one of
    :data:`airlock.archive.sniff.KINDS`; "" when unknown, as for one rebuilt from the API's envelope),
    so a caller can offer another way in (an OCI layout)."""

    def __init__(self, message: str, *, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class StorageError(AirlockError):
    """A blob-storage operation failed. ``blob`` is the display URI of the blob concerned, when known:
    an edge uses it to say which of its flags (source or target) the user should look at."""

    def __init__(self, message: str, *, transient: bool | None = None, blob: str = "") -> None:
        super().__init__(message, transient=transient)
        self.blob = blob


class StorageAuthError(StorageError):
    """Storage refused the credential: expired or malformed SAS, wrong key, missing permission."""


class MissingCredential(StorageAuthError):
    """Neither a SAS token nor a usable Azure identity was given for ``blob``; the edge names the flag."""


class BlobExists(StorageError):
    """The target blob exists and overwriting was not asked for."""


class BlobNotFound(StorageError):
    """The blob (or its container) does not exist."""


class BlobChanged(StorageError):
    """A conditional operation was refused: the blob is no longer the version that was read."""


class SecretError(AirlockError):
    """A secret could not be resolved from its store."""


class SecretAccessDenied(SecretError):
    """The principal lacks the permission (e.g. ``get``) on the secret's vault."""


class SecretNotFound(SecretError):
    """No such secret (or version) in the vault."""


class ResourceNotFound(AirlockError):
    """A control-plane resource does not exist."""


class ResourceConflict(AirlockError):
    """The request conflicts with the resource's current state (e.g. re-running a running run)."""


class AccessDenied(AirlockError):
    """The API caller's token lacks the role the operation needs."""


class ResumeConflict(AirlockError):
    """``--resume`` found staged data written for another plan (catalog), so it cannot continue it."""


class TransferFailed(AirlockError):
    """Some artifacts failed. ``failures`` maps each failed reference to its error message ({} when
    unknown, as for one rebuilt from the API's envelope)."""

    def __init__(self, message: str, *, failures: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.failures = dict(failures or {})


class ReceiptError(AirlockError):
    """A receipt file (what a registry holds) cannot be read: missing, too large, not a receipt."""


class DeltaIncomplete(AirlockError):
    """A delta archive's left-out blobs are not all in the target registry; nothing was tagged."""


class SigningKeyError(UsageError):
    """A signing key or trusted key cannot be used: unreadable PEM, a wrong or missing passphrase,
    or a kind of key airlock does not sign with (ECDSA P-256 and Ed25519 only)."""


class BundleNotTrusted(AirlockError):
    """A bundle was refused by the trusted keys it was checked against (before anything was
    uploaded); the subclass says why. Messages name the bundle and the key ids involved."""


class BundleUnsigned(BundleNotTrusted):
    """Trusted keys were given and the bundle carries no signature."""


class BundleSignedByUntrustedKey(BundleNotTrusted):
    """The bundle is signed, by a key that is not among the trusted keys."""


class BundleSignatureInvalid(BundleNotTrusted):
    """The bundle's signature, by a trusted key id, does not verify over its catalog: the catalog
    (or the signature) was altered after signing."""


def first_invalid(exc: ValidationError) -> tuple[str, str]:
    """Where a document broke a model's rules, and why: the first error's dotted location ("" at the
    top level) and message, for the one-line errors built from a pydantic ``ValidationError``."""
    first = exc.errors()[0]
    # A validator's own ValueError comes back as "Value error, <its message>": the message is enough.
    return ".".join(str(p) for p in first.get("loc", ())), str(first.get("msg")).removeprefix("Value error, ")

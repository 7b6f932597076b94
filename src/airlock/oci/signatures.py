"""Where image signatures live in a registry, and what they look like: the names and media types
of cosign's key-based signatures and of Sigstore bundles (no I/O; the checks are in
:mod:`airlock.transfer.signature_policy`).

- cosign's tag schema: the signatures of ``repo@sha256:<hex>`` are the layers of the manifest
  tagged ``repo:sha256-<hex>.sig``; each layer is a simple-signing payload
  (:data:`SIMPLE_SIGNING`) whose annotation :data:`SIGNATURE_ANNOTATION` is the base64 signature of
  the layer's bytes. cosign keeps attestations and SBOMs beside it (``.att``, ``.sbom``).
- OCI 1.1 referrers: a manifest whose ``subject`` is the artifact, with simple-signing layers as
  above (cosign's referrers mode), or a Sigstore bundle as its layer (:data:`SIGSTORE_BUNDLE`).
"""

from __future__ import annotations

import re
from typing import Final

from airlock.oci.digest import Digest

SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING_TYPE: Final = "cosign container image signature"
SIGSTORE_BUNDLE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
# Bundle media types sigstore clients write (v0.1 and v0.2 carry the version as a parameter).
SIGSTORE_BUNDLE_TYPES: Final = frozenset(
    {
        SIGSTORE_BUNDLE,
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)

# The tags that hold what is attached to a manifest rather than an artifact of its own: the OCI
# 1.1 referrers fallback index (sha256-<hex>) and cosign's signatures, attestations and SBOMs.
_ATTACHMENT_TAG = re.compile(r"\Asha256-([a-f0-9]{64})(\.sig|\.att|\.sbom)?\Z")


def referrers_tag_subject(tag: str | None) -> Digest | None:
    """The subject whose OCI 1.1 referrers fallback index ``tag`` names (``sha256-<hex>``, no
    cosign suffix), or None."""
    found = _ATTACHMENT_TAG.match(tag or "")
    return Digest.parse(f"sha256:{found.group(1)}") if found and found.group(2) is None else None


def cosign_signature_tag(digest: Digest) -> str:
    """cosign's signature tag for a manifest: ``sha256:<hex>`` → ``sha256-<hex>.sig``."""
    return f"{digest.algorithm}-{digest.hex}.sig"


def attached_to(tag: str | None) -> str | None:
    """The digest (``sha256:<hex>``) whose attachments ``tag`` holds, or None for any other tag."""
    found = _ATTACHMENT_TAG.match(tag or "")
    return f"sha256:{found.group(1)}" if found else None

"""``import --annotate-provenance``: each imported tagged artifact gets a referrer of its own that
says where it came from, and its manifest is never changed (its digest and signatures stay valid).

The referrer is an OCI 1.1 artifact: an image manifest with ``artifactType``
:data:`PROVENANCE_TYPE`, the empty config, one layer (the provenance document: the original
reference, the bundle's catalogDigest and export record, the reference it was imported as) and
``subject`` the imported manifest; its annotations repeat the original reference and the
catalogDigest, so ``oras discover`` shows them without fetching the layer. The document holds no
time of its own, so importing the same bundle again pushes the same referrer (nothing new).
Registries without the referrers API find it in the subject's ``sha256-<hex>`` tag-schema index.
"""

from __future__ import annotations

import json
from typing import Any

from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_EMPTY, Descriptor, Manifest
from airlock.oci.reference import ArtifactReference
from airlock.registry.client import RegistryClient

PROVENANCE_TYPE = "application/vnd.airlock.provenance.v1+json"
ORIGINAL_REFERENCE = "dev.airlock.provenance.original-reference"
CATALOG_DIGEST = "dev.airlock.provenance.catalog-digest"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_EMPTY = b"{}"


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def annotate(client: RegistryClient, provenance: dict[str, Any], catalog_digest: str | None) -> list[dict[str, str]]:
    """Push a provenance referrer for every tagged artifact of an import's ``provenance``
    (:func:`airlock.transfer.provenance.import_provenance`) into ``client``'s registry; returns
    ``[{"subject": reference, "digest": referrer digest}]``.

    Raises:
        RegistryError: the registry refused a blob or the manifest (the imported tags stay as they are).
    """
    done: list[dict[str, str]] = []
    for item in provenance.get("artifacts", []):
        ref = ArtifactReference.parse(item["reference"])
        if ref.tag is None or ref.tag.startswith("sha256-"):  # referrers and their tag-schema indexes
            continue
        subject = client.head_manifest(ref.repository, item["digest"])
        if subject is None:
            continue  # gone since the import tagged it
        origin = item.get("origin") or {}
        payload = _compact(
            {
                "originalReference": origin.get("reference"),
                "origin": origin,
                "catalogDigest": catalog_digest,
                "exportRecord": provenance.get("exportRecord"),
                "importedAs": item["reference"],
            }
        )
        annotations = {
            ORIGINAL_REFERENCE: str(origin.get("reference", "")),
            **({CATALOG_DIGEST: catalog_digest} if catalog_digest else {}),
        }
        empty = Descriptor(OCI_EMPTY, Digest.of(_EMPTY), len(_EMPTY))
        layer = Descriptor(PROVENANCE_TYPE, Digest.of(payload), len(payload))
        for desc, data in ((empty, _EMPTY), (layer, payload)):
            if client.blob_size(ref.repository, desc.digest) is None:
                client.push_blob(ref.repository, desc, [data])
        body = {
            "schemaVersion": 2,
            "mediaType": _OCI_MANIFEST,
            "artifactType": PROVENANCE_TYPE,
            "config": empty.to_json(),
            "layers": [layer.to_json()],
            "subject": {"mediaType": subject.media_type, "digest": str(subject.digest), "size": subject.size},
            "annotations": annotations,
        }
        where = f"provenance of {item['reference']}"
        manifest = Manifest.parse(_compact(body), media_type=_OCI_MANIFEST, where=where)
        client.put_manifest(ref.repository, str(manifest.digest), manifest)
        if not client.has_referrers_api(ref.repository, subject.digest):
            listed = Descriptor(
                _OCI_MANIFEST, manifest.digest, manifest.size, artifact_type=PROVENANCE_TYPE, annotations=annotations
            )
            client.add_to_referrers_tag(ref.repository, subject.digest, [listed])
        done.append({"subject": item["reference"], "digest": str(manifest.digest)})
    return done

"""Walking an artifact's content graph: index → manifests → config and layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from airlock.errors import IntegrityError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor, Manifest

# Indexes of indexes exist (e.g. attestation indexes) but deeper nesting is a loop or an attack.
MAX_DEPTH = 8


@dataclass(slots=True)  # an import keeps one per artifact to its end
class Closure:
    """Everything one artifact needs: its manifests (children before parents) and its blobs."""

    manifests: list[Manifest] = field(default_factory=list)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)

    @property
    def top(self) -> Manifest:
        return self.manifests[-1]

    @property
    def size(self) -> int:
        """Bytes of every manifest and blob (what moving this artifact alone would move)."""
        return sum(m.size for m in self.manifests) + sum(d.size for d in self.blobs.values())


def closure(
    top: Manifest, load: Callable[[Descriptor], Manifest], *, where: str, omitted: frozenset[Digest] = frozenset()
) -> Closure:
    """Collect ``top`` and everything it references, loading child manifests with ``load``.

    ``load`` must return the manifest for a descriptor and verify its digest. Children whose digest
    is in ``omitted`` (left out by a platform filter) are neither loaded nor collected.

    Raises:
        IntegrityError: nesting deeper than MAX_DEPTH, a cycle, or a child whose size is not
            what its parent declared. Whatever ``load`` raises propagates.
    """
    out = Closure()
    seen: set[Digest] = set()

    def visit(m: Manifest, depth: int, path: tuple[Digest, ...]) -> None:
        if depth > MAX_DEPTH or m.digest in path:
            raise IntegrityError(f"{where}: manifest {m.digest} nests too deeply or refers to itself")
        if m.digest in seen:
            return
        for child in m.children:
            if child.digest in omitted:
                continue
            cm = load(child)
            if cm.size != child.size:
                raise IntegrityError(
                    f"{where}: manifest {child.digest} is {cm.size} bytes, its index says {child.size}"
                )
            visit(cm, depth + 1, (*path, m.digest))
        for blob in m.blobs:
            out.blobs.setdefault(blob.digest, blob)
        seen.add(m.digest)
        out.manifests.append(m)

    visit(top, 0, ())
    return out

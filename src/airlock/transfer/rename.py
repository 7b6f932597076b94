"""Renaming repositories on import: ``--rename SRC_PREFIX=DST_PREFIX`` (and ImportPipeline ``properties.rename``).

A :class:`RenameMap` holds prefix pairs; a repository is renamed by the longest source prefix it
starts with (``team/`` = ``mirror/team/`` turns ``team/app`` into ``mirror/team/app``), and left
as it is when none matches. Prefixes match whole characters, not path components, so ``team`` also
matches ``teams/x``: end a prefix with ``/`` to mean a directory. Every renamed name is checked
against the distribution spec's repository grammar before anything is uploaded.

An artifact's index children, referrers and ``sha256-<hex>`` fallback tags are stored in its own
repository, so they follow it: renaming applies to each catalog entry's repository, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from airlock.archive.format import CatalogArtifact
from airlock.errors import UsageError
from airlock.oci.reference import validate_repository
from airlock.oci.signatures import referrers_tag_subject

MAX_RULES = 64


def _begins_a_repository(prefix: str) -> bool:
    """Whether some repository name begins with ``prefix``: it is one, or ``prefix`` + "a" is."""
    for name in (prefix, prefix + "a"):
        try:
            validate_repository(name)
            return True
        except UsageError:
            pass
    return False


@dataclass(frozen=True)
class RenameMap:
    """Source prefix → target prefix; :meth:`apply` renames by the longest matching source prefix."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str], *, flag: str = "--rename") -> RenameMap:
        """``SRC=DST`` strings as given on the command line.

        Raises:
            UsageError: a spec without ``=``, an empty source, a source given twice, too many rules.
        """
        pairs: dict[str, str] = {}
        for spec in specs:
            src, sep, dst = spec.partition("=")
            if not sep or not src:
                raise UsageError(f"{flag} {spec!r}: expected SRC_PREFIX=DST_PREFIX, e.g. team/=mirror/team/")
            if src in pairs:
                raise UsageError(f"{flag}: source prefix {src!r} is given twice")
            pairs[src] = dst
        return cls.of(pairs, where=flag)

    @classmethod
    def of(cls, pairs: Mapping[str, str] | None, *, where: str = "rename") -> RenameMap:
        """From a mapping (a pipeline's ``properties.rename``).

        Raises:
            UsageError: an empty source prefix, a destination prefix no repository name can begin
                with, or more than MAX_RULES rules.
        """
        pairs = dict(pairs or {})
        if len(pairs) > MAX_RULES:
            raise UsageError(f"{where}: at most {MAX_RULES} prefixes, got {len(pairs)}")
        if "" in pairs:
            raise UsageError(f"{where}: a source prefix may not be empty")
        for src, dst in pairs.items():
            # Checked here, so that a pipeline's PUT refuses what every one of its runs would.
            if dst and not _begins_a_repository(dst):
                raise UsageError(
                    f"{where}: {src}={dst} renames into an invalid repository name ({dst}...): lowercase "
                    "letters, digits and separators (. _ __ -) in path components joined by '/'"
                )
        return cls(tuple(sorted(pairs.items())))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def to_json(self) -> dict[str, str]:
        return dict(self.rules)

    def apply(self, repository: str) -> str:
        """``repository`` renamed by its longest matching source prefix (unchanged when none matches).

        Raises:
            UsageError: the renamed name is not a valid repository name (it names both).
        """
        best = max((r for r in self.rules if repository.startswith(r[0])), key=lambda r: len(r[0]), default=None)
        if best is None:
            return repository
        renamed = best[1] + repository[len(best[0]) :]
        try:
            return validate_repository(renamed)
        except UsageError as exc:
            raise UsageError(f"renaming {repository} by {best[0]}={best[1]} gives {exc}") from None

    def reference(self, reference: str) -> str:
        """``repo:tag`` or ``repo@digest`` with its repository renamed (the repository validated first).

        Raises:
            UsageError: the repository, before or after renaming, is not a valid name.
        """
        at = reference.find("@")
        repo = reference[:at] if at >= 0 else reference.rsplit(":", 1)[0]
        return self.apply(validate_repository(repo)) + reference[len(repo) :]

    def entries(self, entries: Iterable[CatalogArtifact]) -> list[CatalogArtifact]:
        """Every entry renamed (see :meth:`entry`), refusing to merge two artifacts onto one tag.

        Two prefixes can send different source repositories to one target repository
        (``team/=m/`` and ``other/=m/``): same tag, different digests, and one would silently
        overwrite the other. The same artifact twice is no conflict.

        Raises:
            UsageError: a renamed name is invalid (see :meth:`apply`), or two entries with the same
                tag and different digests are renamed into one repository (both are named).
        """
        out: list[CatalogArtifact] = []
        tags: dict[tuple[str, str], CatalogArtifact] = {}  # (target repository, tag) → its source entry
        for entry in entries:
            renamed = self.entry(entry)
            # Referrers fallback indexes (sha256-<hex>) of one subject merge on import: no conflict.
            if self.rules and renamed.tag is not None and referrers_tag_subject(renamed.tag) is None:
                first = tags.setdefault((renamed.repository, renamed.tag), entry)
                if first.digest != entry.digest:
                    raise UsageError(
                        f"renaming would put {first.reference} ({first.digest}) and {entry.reference} "
                        f"({entry.digest}) on one tag, {renamed.reference}; nothing was imported: "
                        "give them prefixes that keep them apart"
                    )
            out.append(renamed)
        return out

    def entry(self, entry: CatalogArtifact) -> CatalogArtifact:
        """A copy of a catalog entry in its renamed repository (its reference renamed too).

        Raises:
            UsageError: the renamed name is invalid (see :meth:`apply`).
        """
        repo = self.apply(entry.repository)
        if repo == entry.repository:
            return entry
        suffix = entry.reference[len(entry.repository) :] if entry.reference.startswith(entry.repository) else ""
        return replace(entry, repository=repo, reference=repo + suffix)

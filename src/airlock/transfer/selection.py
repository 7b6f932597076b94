"""What to export, as rules: repositories (globs) with tag filters, platforms, plus plain artifacts.

Pure: parsing and matching only. :mod:`airlock.transfer.expansion` applies the rules to a registry
(catalog, tags, configs). The same :class:`Selection` model is read from ``--selection FILE`` (YAML
or JSON), built from the CLI's flags, and carried by a PipelineRun's ``properties.request.selection``.

Rules, for each repository entry (every filter narrows; all are optional):
- ``name``: a repository, or a glob (``*`` within one path component, ``**`` across them, ``?``)
  expanded through the registry's ``/v2/_catalog``;
- ``tags``: a regular expression every kept tag matches in full;
- ``semver``: a range such as ``>=1.4 <2`` (comparators joined by spaces are ANDed, ``||`` ORs
  groups); tags that are not semantic versions are left out;
- ``keep``: the N newest, by semantic version when every candidate tag is one, else by the
  ``created`` time of the image's config;
- ``platforms``: ``os/arch[/variant]``; only these platforms' manifests of a multi-arch index travel.

Semantic versions are parsed and ordered by the ``semver`` library (SemVer 2.0.0 precedence); a tag
may leave out minor and patch (``1.4`` is ``1.4.0``) and may start with ``v``. As in npm, a
pre-release (``2.0.0-rc.1``) is matched only by a range that names a pre-release of the same
``major.minor.patch``: ``>=1.4 <2`` does not take ``2.0.0-rc.1``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import re2
import semver
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from airlock.errors import UsageError, first_invalid
from airlock.oci.manifest import Descriptor

# A selection file is read whole; this bounds what a mistaken path (a multi-GB tar) costs.
MAX_SELECTION_FILE = 4 * 1024 * 1024
MAX_RULE_ENTRIES = 10_000  # the catalog's own limit on artifacts (archive.format.MAX_ARTIFACTS)

PlatformIndexMode = Literal["keep", "rewrite"]


class TagPattern(Protocol):
    """A compiled ``--tags`` pattern (an RE2 one)."""

    def fullmatch(self, text: str) -> object | None: ...


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the user's error, said once by us, not by absl on stderr


def compile_re2(pattern: str) -> TagPattern:
    """``pattern`` compiled by RE2 (Go's syntax; linear-time matching).

    Raises:
        UsageError: RE2 refuses it: its reason, as text.
    """
    try:
        compiled: TagPattern = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise UsageError(reason.decode() if isinstance(reason, bytes) else str(reason)) from None
    return compiled


_PLATFORM_RE = re.compile(r"^([a-z0-9_.-]+)/([a-z0-9_.-]+)(?:/([a-z0-9_.-]+))?\Z")
_GLOB_CHARS = frozenset("*?[")


# -- platforms ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """``os/arch[/variant]``; a missing variant matches any variant."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Raises UsageError unless ``text`` is ``os/arch`` or ``os/arch/variant`` (lowercase)."""
        m = _PLATFORM_RE.match(text.strip())
        if not m:
            raise UsageError(
                f"invalid platform {text[:60]!r}: expected os/arch or os/arch/variant, e.g. linux/arm64/v8"
            )
        return cls(m.group(1), m.group(2), m.group(3))

    def matches(self, platform: dict[str, Any] | None) -> bool:
        if not platform:
            return False
        if platform.get("os") != self.os or platform.get("architecture") != self.architecture:
            return False
        return self.variant is None or platform.get("variant") == self.variant

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


def describe_platform(platform: dict[str, Any] | None) -> str:
    """An index entry's platform as ``os/arch[/variant]`` (``unknown`` when it has none)."""
    if not platform:
        return "unknown"
    parts = [str(platform.get("os", "?")), str(platform.get("architecture", "?"))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


# BuildKit stores provenance/SBOM attestations as index entries that point at the image they attest.
_ATTESTS = "vnd.docker.reference.digest"


def kept_children(children: Sequence[Descriptor], platforms: Sequence[Platform]) -> list[Descriptor]:
    """The entries of an index that travel when only ``platforms`` are wanted.

    An entry travels when its platform matches one of them; an attestation manifest travels with
    the image it attests. Entries without a platform (artifacts, nested indexes) are left out too:
    the filter asks for platforms, and nothing unnamed rides along.
    """
    kept = [c for c in children if any(p.matches(c.platform) for p in platforms)]
    kept_digests = {str(c.digest) for c in kept}
    return [c for c in children if c in kept or c.annotations.get(_ATTESTS) in kept_digests]


# -- semantic versions ----------------------------------------------------------------------------


def parse_semver(tag: str) -> semver.Version | None:
    """The semantic version a tag spells (``1``, ``1.4``, ``v1.4.2-rc.1``), or None."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    # Build metadata is spelled "+" in SemVer, which a tag cannot hold; "_" is the usual stand-in.
    text = text.replace("_", "+", 1)
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


_COMPARATOR_RE = re.compile(r"^(>=|<=|>|<|==|=|!=)?\s*(\S+)\Z")
_OPS: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "==": lambda c: c == 0,
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
}


@dataclass(frozen=True)
class SemverRange:
    """A range of semantic versions: groups of comparators (ANDed) joined by ``||`` (ORed)."""

    text: str
    groups: tuple[tuple[tuple[str, semver.Version], ...], ...]

    @classmethod
    def parse(cls, text: str) -> SemverRange:
        """Raises UsageError for an empty range, an unknown operator or a version that is not semver."""
        groups = []
        for group in text.split("||"):
            # ">= 1.4" and ">=1.4" both: glue a lone operator to the version after it.
            tokens = re.sub(r"(>=|<=|!=|==|>|<|=)\s+", r"\1", group.strip()).split()
            comparators = []
            for token in tokens:
                m = _COMPARATOR_RE.match(token)
                version = parse_semver(m.group(2)) if m else None
                if m is None or version is None:
                    raise UsageError(
                        f"invalid semver range {text[:80]!r}: {token[:40]!r} is not a comparator "
                        "(>=, <=, >, <, =, != followed by a version such as 1.4 or 1.4.2)"
                    )
                comparators.append((m.group(1) or "=", version))
            if not comparators:
                raise UsageError(f"invalid semver range {text[:80]!r}: an empty group")
            groups.append(tuple(comparators))
        return cls(text, tuple(groups))

    def matches(self, version: semver.Version) -> bool:
        return any(self._group_matches(group, version) for group in self.groups)

    @staticmethod
    def _group_matches(group: tuple[tuple[str, semver.Version], ...], version: semver.Version) -> bool:
        if version.prerelease and not any(
            v.prerelease and v.finalize_version() == version.finalize_version() for _, v in group
        ):
            return False
        return all(_OPS[op](version.compare(v)) for op, v in group)


# -- repository globs -----------------------------------------------------------------------------


def is_glob(name: str) -> bool:
    return any(c in _GLOB_CHARS for c in name)


def glob_regex(pattern: str) -> TagPattern:
    """``*`` and ``?`` stay within a path component, ``**`` crosses ``/``; ``[...]`` as in fnmatch.

    Compiled with RE2, as ``--tags`` is: the glob comes from a selection (a Contributor's run
    request), and Python's backtracking engine takes exponential time on stars such as
    ``*[a-z]*[a-z]*…0`` against a long name; RE2 matches in linear time.

    Raises:
        UsageError: the glob is malformed (a ``[`` without ``]``, an empty or reversed range).
    """
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise UsageError(f"invalid repository glob {pattern[:80]!r}: '[' without ']'")
            out.append("[" + re.escape(pattern[i + 1 : end]).replace(r"\-", "-") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return compile_re2("".join(out))
    except UsageError as exc:
        raise UsageError(f"invalid repository glob {pattern[:80]!r}: {exc}") from None


# -- the model ------------------------------------------------------------------------------------


def _valid_platforms(v: list[str] | None) -> list[str] | None:
    for p in v or []:
        try:
            Platform.parse(p)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return v


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RepositoryRule(_Rules):
    """Every tag of one repository (or of each repository a glob names), narrowed by its filters."""

    name: Annotated[str, Field(min_length=1, max_length=255)]
    tags: Annotated[str, Field(max_length=1024)] | None = None
    semver: Annotated[str, Field(max_length=1024)] | None = None
    # Strict: YAML's `keep: yes` (True) or a "2" is a mistake, not 1 or 2.
    keep: Annotated[int, Field(ge=1, le=MAX_RULE_ENTRIES, strict=True)] | None = None
    platforms: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=64)] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9._/*?\[\]-]+", v):
            raise ValueError("a repository name or glob: lowercase letters, digits, . _ - / and * ? [ ]")
        if is_glob(v):
            try:
                glob_regex(v)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                compile_re2(v)
            except UsageError as exc:
                raise ValueError(f"not an RE2 regular expression ({exc})") from None
        return v

    @field_validator("semver")
    @classmethod
    def _semver(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                SemverRange.parse(v)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str] | None) -> list[str] | None:
        return _valid_platforms(v)

    @cached_property
    def tag_regex(self) -> TagPattern | None:
        # RE2 (Go's regexp syntax, as regclient's and Zarf's filters): linear time, so a pattern from
        # an API request (a Contributor's selection) cannot stall a worker by backtracking.
        pattern: TagPattern | None = compile_re2(self.tags) if self.tags is not None else None
        return pattern

    @cached_property
    def semver_range(self) -> SemverRange | None:
        return SemverRange.parse(self.semver) if self.semver is not None else None

    @cached_property
    def platform_set(self) -> tuple[Platform, ...]:
        return tuple(Platform.parse(p) for p in self.platforms or [])

    def wants(self, tag: str) -> bool:
        """Whether ``tag`` passes the ``tags`` and ``semver`` filters (``keep`` is applied after)."""
        if self.tag_regex is not None and not self.tag_regex.fullmatch(tag):
            return False
        if self.semver_range is not None:
            version = parse_semver(tag)
            return version is not None and self.semver_range.matches(version)
        return True


class Selection(_Rules):
    """What an export takes: ``repositories`` with their rules, plus ``artifacts`` named outright.

    ``platforms`` applies to ``artifacts`` (and to repositories that name none of their own);
    ``platformIndex`` says what a multi-arch index filtered by platform becomes: ``keep`` (the
    index as it is, with only the chosen platforms' manifests) or ``rewrite`` (a new, smaller index).
    """

    repositories: Annotated[list[RepositoryRule], Field(max_length=1024)] = Field(default_factory=list)
    artifacts: Annotated[list[Annotated[str, Field(max_length=512)]], Field(max_length=MAX_RULE_ENTRIES)] = Field(
        default_factory=list
    )
    platforms: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=64)] | None = None
    platform_index: PlatformIndexMode = Field(default="keep", alias="platformIndex")

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str] | None) -> list[str] | None:
        return _valid_platforms(v)

    @property
    def empty(self) -> bool:
        return not self.repositories and not self.artifacts

    def merged(self, other: Selection) -> Selection:
        """Both selections' entries; ``other``'s platforms and index mode where it sets them."""
        return Selection(
            repositories=[*self.repositories, *other.repositories],
            artifacts=[*self.artifacts, *other.artifacts],
            platforms=other.platforms if other.platforms is not None else self.platforms,
            platformIndex=other.platform_index if "platform_index" in other.model_fields_set else self.platform_index,
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def parse_selection(doc: object, *, where: str) -> Selection:
    """Validate a parsed selection document. Raises UsageError naming the field that is wrong."""
    try:
        return Selection.model_validate(doc)
    except ValidationError as exc:
        field, why = first_invalid(exc)
        raise UsageError(f"{where}: {field or '(top level)'}: {why}") from None


def load_selection_file(path: str) -> Selection:
    """Read a selection from a YAML or JSON file (JSON is YAML; a ``.json`` file is read as JSON).

    Raises:
        UsageError: the file cannot be read, is too large, is not YAML/JSON, or breaks a rule.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_SELECTION_FILE + 1)
    except OSError as exc:
        raise UsageError(f"selection file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SELECTION_FILE:
        raise UsageError(f"selection file {path}: larger than {MAX_SELECTION_FILE // (1024 * 1024)} MiB")
    try:
        doc = json.loads(raw) if p.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"selection file {path}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'} ({first})"
        ) from None
    return parse_selection(doc if doc is not None else {}, where=f"selection file {path}")


def newest(tags: Iterable[str], created: Callable[[Sequence[str]], dict[str, datetime | None]], keep: int) -> list[str]:
    """The ``keep`` newest of ``tags``, newest first: by semver when every one is a semantic
    version, else by ``created`` (tag → time; None, unknown, counts as oldest); ties by tag name.
    ``created`` is called only when it is needed, with the tags it must date."""
    tags = list(tags)
    versions = {t: parse_semver(t) for t in tags}
    if all(v is not None for v in versions.values()):
        return sorted(tags, key=lambda t: (versions[t], t), reverse=True)[:keep]
    times = created(tags)
    return sorted(tags, key=lambda t: (times.get(t) or _NEVER, t), reverse=True)[:keep]


_NEVER = datetime.min.replace(tzinfo=UTC)


def parse_created(value: object) -> datetime | None:
    """An image config's ``created`` (RFC 3339) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    # Go writes nanoseconds; fromisoformat takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""The pure selection rules: semver ranges, tag regexes, repository globs, platforms, keep-N order."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from airlock.errors import UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_MANIFEST, Descriptor
from airlock.transfer.selection import (
    Platform,
    RepositoryRule,
    SemverRange,
    compile_re2,
    glob_regex,
    kept_children,
    newest,
    parse_created,
    parse_selection,
    parse_semver,
)


@pytest.mark.parametrize(
    ("rng", "tag", "matches"),
    [
        (">=1.4 <2", "1.4", True),
        (">=1.4 <2", "1.4.0", True),
        (">=1.4 <2", "v1.10.3", True),
        (">=1.4 <2", "1.3.9", False),
        (">=1.4 <2", "2.0.0", False),
        (">=1.4 <2", "2.0.0-rc.1", False),  # a pre-release is taken only by a range naming one
        (">=1.4 <2", "1.5.0-rc.1", False),
        (">=1.5.0-rc.0 <2", "1.5.0-rc.1", True),
        (">= 1.4, <2".replace(",", ""), "1.9", True),  # a space after the operator
        ("<1 || >=3", "0.9", True),
        ("<1 || >=3", "2.0", False),
        ("<1 || >=3", "3.1", True),
        ("!=1.4.2", "1.4.2", False),
        ("=1.4", "1.4.0", True),
        ("1.4", "1.4.0", True),
    ],
)
def test_semver_range_matches_by_semver_precedence(rng: str, tag: str, matches: bool) -> None:
    version = parse_semver(tag)
    assert version is not None
    assert SemverRange.parse(rng).matches(version) is matches


@pytest.mark.parametrize("tag", ["latest", "1.4.x", "main-abc123", "1.2.3.4", ""])
def test_tags_that_are_not_semver_parse_to_none(tag: str) -> None:
    assert parse_semver(tag) is None


@pytest.mark.parametrize("rng", ["", ">=", "~1.4", ">=1.x", "1.4 ||"])
def test_an_invalid_semver_range_is_a_usage_error(rng: str) -> None:
    with pytest.raises(UsageError, match="semver range"):
        SemverRange.parse(rng)


def test_tag_regex_must_match_in_full_and_semver_leaves_non_versions_out() -> None:
    rule = RepositoryRule(name="team/app", tags=r"1\.4.*", semver=">=1.4.1")
    assert [t for t in ["1.4", "1.4.1", "1.4.2", "21.4.2", "1.4.2-x", "latest"] if rule.wants(t)] == ["1.4.1", "1.4.2"]


@pytest.mark.timeout(10)  # a backtracking engine takes hours on this tag (2^40 paths): the timeout is the guard
def test_a_tags_pattern_that_would_backtrack_matches_in_linear_time() -> None:
    # A Contributor's run request carries its own pattern; it must not be able to stall a worker.
    rule = RepositoryRule(name="team/app", tags=r"(a+)+\.b")
    assert not rule.wants("a" * 40 + "!")
    assert rule.wants("aaa.b")


def test_a_tags_pattern_outside_re2_syntax_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="not an RE2 regular expression"):
        RepositoryRule(name="team/app", tags=r"(?<=v)1\.4")  # lookbehind: not RE2


def test_repository_globs_stay_within_a_component_unless_doubled() -> None:
    repos = ["team/app", "team/web", "team/sub/app", "other/app", "teamx/app"]
    assert [r for r in repos if glob_regex("team/*").fullmatch(r)] == ["team/app", "team/web"]
    assert [r for r in repos if glob_regex("team/**").fullmatch(r)] == ["team/app", "team/web", "team/sub/app"]
    assert [r for r in repos if glob_regex("*/app").fullmatch(r)] == ["team/app", "other/app", "teamx/app"]
    assert [r for r in repos if glob_regex("team/[aw]*").fullmatch(r)] == ["team/app", "team/web"]


# Regression: globs were compiled by Python's backtracking engine (the tag filter already used RE2),
# so a selection's `*[a-z]*[a-z]…0` took seconds per catalog entry, four times more per star.
def test_a_repository_glob_matches_in_linear_time_however_many_stars() -> None:
    stars = "team/" + "*[a-z]" * 40 + "*0"  # backtracking: about 4**40 steps on the name below
    assert RepositoryRule(name=stars).name == stars
    assert glob_regex(stars).fullmatch("team/" + "a" * 250) is None
    assert glob_regex(stars).fullmatch("team/" + "a" * 249 + "0") is not None


# Regression: a malformed glob passed the name check and crashed the expansion (exit 70, "internal
# error"; a run failed with a traceback in the server log).
@pytest.mark.parametrize(
    ("glob", "why"),
    [("team/[z-a]*", "invalid character class range: z-a"), ("team/a[]", "missing ]"), ("team/[ab", "without ']'")],
)
def test_a_malformed_repository_glob_is_refused_naming_it(glob: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid repository glob {glob!r}: ") + ".*" + re.escape(why)):
        RepositoryRule(name=glob)


def test_an_invalid_re2_pattern_is_one_message_with_nothing_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=r"^invalid character class range: z-a$"):
        compile_re2("[z-a]")
    assert capfd.readouterr().err == ""  # RE2 logs parse errors through absl unless told not to


def test_keep_orders_by_semver_when_all_tags_are_versions_else_by_created() -> None:
    def never(tags: object) -> dict[str, datetime | None]:
        raise AssertionError("created times are not needed for semver tags")

    assert newest(["1.2", "1.10", "1.9.1", "v2.0.0"], never, 2) == ["v2.0.0", "1.10"]
    times = {"a": datetime(2026, 1, 3, tzinfo=UTC), "b": None, "c": datetime(2026, 1, 5, tzinfo=UTC)}
    assert newest(["a", "b", "c", "1.0"], lambda tags: {t: times.get(t) for t in tags}, 3) == ["c", "a", "b"]


def test_created_times_parse_rfc3339_with_nanoseconds() -> None:
    assert parse_created("2026-11-30T10:00:00.123456789Z") == datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_created("yesterday") is None
    assert parse_created(None) is None


def _desc(n: int, platform: dict[str, str] | None, **annotations: str) -> Descriptor:
    return Descriptor(OCI_MANIFEST, Digest.of(bytes([n])), 10, platform=platform, annotations=annotations)


def test_platform_filter_keeps_chosen_platforms_and_their_attestations_only() -> None:
    amd = _desc(1, {"os": "linux", "architecture": "amd64"})
    arm7 = _desc(2, {"os": "linux", "architecture": "arm", "variant": "v7"})
    arm6 = _desc(3, {"os": "linux", "architecture": "arm", "variant": "v6"})
    attests_amd = _desc(
        4, {"os": "unknown", "architecture": "unknown"}, **{"vnd.docker.reference.digest": str(amd.digest)}
    )
    attests_arm6 = _desc(
        5, {"os": "unknown", "architecture": "unknown"}, **{"vnd.docker.reference.digest": str(arm6.digest)}
    )
    children = [amd, arm7, arm6, attests_amd, attests_arm6]
    assert kept_children(children, [Platform.parse("linux/amd64")]) == [amd, attests_amd]
    assert kept_children(children, [Platform.parse("linux/arm/v7")]) == [arm7]
    assert kept_children(children, [Platform.parse("linux/arm")]) == [arm7, arm6, attests_arm6]


@pytest.mark.parametrize("text", ["linux", "linux/", "Linux/AMD64", "linux/amd64/v8/x", "linux amd64"])
def test_an_invalid_platform_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid platform"):
        Platform.parse(text)


def test_selection_documents_name_the_wrong_field() -> None:
    with pytest.raises(UsageError, match=r"sel: repositories\.0\.keep: Input should be greater than or equal to 1"):
        parse_selection({"repositories": [{"name": "team/app", "keep": 0}]}, where="sel")
    with pytest.raises(UsageError, match=r"repositories\.0\.semver: .*semver range"):
        parse_selection({"repositories": [{"name": "team/app", "semver": "~1"}]}, where="sel")
    with pytest.raises(UsageError, match=r"repositories\.0\.colour: Extra inputs are not permitted"):
        parse_selection({"repositories": [{"name": "team/app", "colour": "red"}]}, where="sel")
    with pytest.raises(UsageError, match=r"platformIndex: Input should be 'keep' or 'rewrite'"):
        parse_selection({"artifacts": ["a:1"], "platformIndex": "shrink"}, where="sel")


@pytest.mark.parametrize("keep", [True, "2", 1.5])
def test_a_keep_that_is_not_an_integer_is_refused_not_coerced(keep: object) -> None:
    """Regression: YAML's `keep: yes` exported one tag, and "2" two: both are mistakes."""
    with pytest.raises(UsageError, match=r"sel: repositories\.0\.keep: Input should be a valid integer"):
        parse_selection({"repositories": [{"name": "team/app", "keep": keep}]}, where="sel")
    assert parse_selection({"repositories": [{"name": "team/app", "keep": 2}]}, where="sel").repositories[0].keep == 2

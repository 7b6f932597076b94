"""Blob URIs and blob names: a name addresses a blob inside its container, and a URI reads back as itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.errors import UsageError
from airlock.storage.location import blob_in, blob_url, check_blob_name, parse_blob_uri, parse_container_uri

AZURITE = "http://127.0.0.1:10000/acct"


@pytest.mark.parametrize(
    "name",
    ["", "../x.tar", "a/../../x.tar", "a/./x.tar", ".", "/x.tar", "x.tar/", "a//x.tar", "a\\x.tar", "a\nx", "\x7f"],
)
def test_a_blob_name_that_could_leave_its_container_or_holds_a_control_character_is_refused(name: str) -> None:
    with pytest.raises(UsageError, match="invalid blob name"):
        check_blob_name(name)
    with pytest.raises(UsageError, match="invalid blob name"):
        blob_in(parse_container_uri(f"{AZURITE}/transfer"), name)


def test_a_blob_name_is_not_decoded_on_either_backend(tmp_path: Path) -> None:
    """Regression: "a%2F..%2F..%2Fother%2Fx" was decoded into another container (or directory)."""
    name = "a%2F..%2F..%2Fother%2Fx.tar"
    azure = blob_in(parse_container_uri(f"{AZURITE}/transfer"), name)
    assert (azure.container, azure.blob) == ("transfer", name)
    assert azure.display == f"{AZURITE}/transfer/a%252F..%252F..%252Fother%252Fx.tar"
    local = blob_in(parse_container_uri(str(tmp_path)), name)
    assert local.path == tmp_path / name and local.path.parent == tmp_path
    nested = blob_in(parse_container_uri(f"{AZURITE}/transfer"), "exports/2026/batch1.tar")
    assert nested.blob == "exports/2026/batch1.tar"
    # A hidden file (a resume's staging file) is not a file container's blob; in Azure it is a name.
    for hidden in (".x.tar.airlock-partial", "a/.b.tar"):
        with pytest.raises(UsageError, match=r"may not begin with '\.'"):
            blob_in(parse_container_uri(str(tmp_path)), hidden)
        assert blob_in(parse_container_uri(f"{AZURITE}/transfer"), hidden).blob == hidden


@pytest.mark.parametrize(
    "path",
    ["transfer/../other/x.tar", "transfer/a/%2E%2E/x.tar", "transfer/a%2F..%2F..%2Fother%2Fx.tar", "transfer/./x"],
)
def test_an_azure_uri_whose_blob_name_has_a_dot_segment_is_refused(path: str) -> None:
    """HTTP clients and servers resolve dot-segments, so the request would address another blob."""
    with pytest.raises(UsageError, match=r"'\.' or '\.\.' segment"):
        parse_blob_uri(f"{AZURITE}/{path}")


_SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))


@given(st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join))
def test_a_blob_url_parses_back_as_the_same_blob_name(name: str) -> None:
    check_blob_name(name)
    parsed = parse_blob_uri(blob_url(AZURITE, "transfer", name))
    assert (parsed.account, parsed.container, parsed.blob) == ("acct", "transfer", name)


@pytest.mark.parametrize("account", ["acct%2F..%2Fother", "Acct", "ac", "a-b-c"])
def test_a_path_style_uri_whose_account_is_not_an_account_name_is_refused(account: str) -> None:
    """Decoded, "acct%2F..%2Fother" was joined into the account URL as text: http://…/acct/../other."""
    with pytest.raises(UsageError, match="must be 3-24 lowercase letters and digits"):
        parse_blob_uri(f"http://127.0.0.1:10000/{account}/transfer/x.tar")

"""`shared.http.client_address`: the TCP peer, unless it is a trusted proxy; then the first
untrusted hop of `X-Forwarded-For` from the right. Malformed input never raises."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from shared.http import client_address

PROXIES = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


def scope(peer: str | None, *forwarded: str | bytes) -> dict:
    headers = [
        (b"x-forwarded-for", f if isinstance(f, bytes) else f.encode("latin-1")) for f in forwarded
    ]
    headers.append((b"host", b"ferry.example"))
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/auth/login",
        "headers": headers,
        "client": (peer, 51000) if peer is not None else None,
    }


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards():
    assert client_address(scope("203.0.113.9", "198.51.100.1"), []) == "203.0.113.9"


def test_an_untrusted_peer_cannot_spoof_its_address():
    assert client_address(scope("203.0.113.9", "198.51.100.1"), PROXIES) == "203.0.113.9"


def test_a_trusted_proxy_names_its_client():
    assert client_address(scope("10.1.2.3", "198.51.100.1"), PROXIES) == "198.51.100.1"


def test_the_walk_skips_trusted_hops_and_stops_at_the_first_untrusted_from_the_right():
    # The client wrote "1.1.1.1" itself; its real address was appended by our proxies.
    header = "1.1.1.1, 198.51.100.7, 10.9.9.9, 10.0.0.5"
    assert client_address(scope("10.1.2.3", header), PROXIES) == "198.51.100.7"


def test_several_forwarded_headers_are_one_list_in_order():
    assert client_address(scope("10.1.2.3", "198.51.100.7", "10.0.0.5"), PROXIES) == (
        "198.51.100.7"
    )


def test_a_trusted_proxy_without_the_header_is_the_client_itself():
    assert client_address(scope("10.1.2.3"), PROXIES) == "10.1.2.3"


def test_when_every_hop_is_trusted_the_farthest_one_stands_for_the_client():
    assert client_address(scope("10.1.2.3", "10.0.0.7, 10.0.0.5"), PROXIES) == "10.0.0.7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("not-an-ip", "10.1.2.3"),  # the peer: nothing in the header can be believed
        ("198.51.100.7, garbage", "10.1.2.3"),  # never skip past a bad hop
        ("198.51.100.7, unknown, 10.0.0.5", "10.0.0.5"),  # the last good (trusted) hop
        ("198.51.100.7,, 10.0.0.5", "10.0.0.5"),  # an empty entry
        ("", "10.1.2.3"),
        ("[fd00::1", "10.1.2.3"),  # an unclosed bracket
        ("999.1.1.1", "10.1.2.3"),
        ("198.51.100.7:notaport:x", "10.1.2.3"),
    ],
)
def test_a_malformed_entry_ends_the_walk_at_the_last_good_hop(header, expected):
    assert client_address(scope("10.1.2.3", header), PROXIES) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.7:4711", "198.51.100.7"),
        ("[2001:db8::7]:4711", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("2001:db8:0:0::7", "2001:db8::7"),  # written the one canonical way
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped is the IPv4 address
    ],
)
def test_addresses_are_read_with_or_without_ports_and_normalised(header, expected):
    assert client_address(scope("10.1.2.3", header), PROXIES) == expected


def test_an_ipv6_proxy_and_an_ipv4_mapped_peer_are_recognised():
    assert client_address(scope("fd00::2", "198.51.100.7"), PROXIES) == "198.51.100.7"
    assert client_address(scope("::ffff:10.1.2.3", "198.51.100.7"), PROXIES) == "198.51.100.7"


def test_a_peer_that_is_not_an_address_is_returned_as_it_is():
    assert client_address(scope("testclient", "198.51.100.7"), PROXIES) == "testclient"
    assert client_address(scope(None, "198.51.100.7"), PROXIES) == "unknown"


def test_a_starlette_request_works_like_its_scope():
    request = Request(scope("10.1.2.3", "198.51.100.7"))
    assert client_address(request, PROXIES) == "198.51.100.7"


def test_bytes_that_are_not_text_do_not_raise():
    header = b"198.51.100.7, \xff\xfe\x00, 10.0.0.5"
    assert client_address(scope("10.1.2.3", header), PROXIES) == "10.0.0.5"


@given(st.lists(st.binary(max_size=40), max_size=4), st.sampled_from(["10.1.2.3", "8.8.8.8"]))
def test_any_header_bytes_give_an_address_and_never_raise(headers, peer):
    found = client_address(scope(peer, *headers), PROXIES)
    assert str(ip_address(found)) == found  # an address, written the canonical way
    if peer == "8.8.8.8":
        assert found == peer  # an untrusted peer is never replaced

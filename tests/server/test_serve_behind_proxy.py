"""ServeConfig.trusted_proxies: from a trusted peer, Forwarded / X-Forwarded-* set the
request's ip, scheme, host and url; from anyone else a spoofed header changes nothing.
(The header rules themselves: tests/protocol/test_forwarded.py; real nginx in front:
tests/deploy/.)"""

from __future__ import annotations

import pytest

import sansnet as net

pytestmark = pytest.mark.anyio

SPOOFED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example",
}


def describe(request: net.ServeRequest) -> str:
    return net.json_encode(
        {
            "ip": request.ip,
            "port": request.port,
            "scheme": request.scheme,
            "host": request.host,
            "url": request.url,
        }
    )


async def test_an_untrusted_peer_cannot_spoof_its_address() -> None:
    async with net.serve(0, describe) as handle:
        response = await net.request(handle.url + "/p?q=1", headers=SPOOFED)
    seen = response.json()
    assert seen["ip"] == "127.0.0.1"
    assert seen["port"] != 0
    assert seen["scheme"] == "http"
    assert seen["host"] == f"127.0.0.1:{handle.port}"
    assert seen["url"] == f"http://127.0.0.1:{handle.port}/p?q=1"


async def test_a_trusted_proxy_reports_the_client() -> None:
    async with net.serve(0, describe, trusted_proxies=["127.0.0.1"]) as handle:
        forwarded = await net.request(handle.url + "/p", headers=SPOOFED)
        standard = await net.request(
            handle.url + "/ws", headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=wss'}
        )
        plain = await net.request(handle.url + "/")
    assert forwarded.json() == {
        "ip": "203.0.113.9",
        "port": 0,
        "scheme": "https",
        "host": "shop.example",
        "url": "https://shop.example/p",
    }
    assert standard.json()["ip"] == "2001:db8::1"
    assert standard.json()["port"] == 4711
    assert standard.json()["scheme"] == "https"  # wss: an https request
    assert plain.json()["ip"] == "127.0.0.1"  # nothing forwarded: the peer itself


async def test_a_forwarded_host_that_is_not_a_host_leaves_the_host_field() -> None:
    """Issue: a trusted proxy passing on X-Forwarded-Host "evil.example/x?" made it the
    request's host, and its url "http://evil.example/x?/p". Now it is ignored."""
    async with net.serve(0, describe, trusted_proxies=["127.0.0.1"]) as handle:
        response = await net.request(
            handle.url + "/p", headers={"X-Forwarded-Host": "evil.example/x?"}
        )
    assert response.json()["host"] == f"127.0.0.1:{handle.port}"
    assert response.json()["url"] == f"http://127.0.0.1:{handle.port}/p"


async def test_an_empty_trusted_proxies_str_trusts_nobody() -> None:
    """Issue: trusted_proxies="" (and "127.0.0.1,") raised; empty entries are skipped."""
    assert net.ServeConfig(handle_request=describe, trusted_proxies="").trusted_proxies == ""
    async with net.serve(0, describe, trusted_proxies="127.0.0.1,") as handle:
        response = await net.request(handle.url + "/p", headers=SPOOFED)
    assert response.json()["ip"] == "203.0.113.9"


async def test_a_bad_trusted_proxies_entry_is_invalid_argument() -> None:
    with pytest.raises(net.InvalidArgument, match="not an IP address"):
        net.ServeConfig(handle_request=describe, trusted_proxies=["localhost"])

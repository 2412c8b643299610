"""http_fetch against a local HTTP server: allow-list, address checks (also after redirects),
size cap, HEAD, content types."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keel_tool_gateway.adapters.tools.http_fetch import (
    HttpFetchInput,
    HttpFetchSettings,
    make_http_fetch,
)
from keel_tool_gateway.adapters.tools.http_guard import (
    BlockedDestination,
    host_allowed,
    refusal_reason,
)
from keel_tool_gateway.domain.registry import ToolError

ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/text": (200, {"Content-Type": "text/plain; charset=utf-8"}, "héllo".encode()),
    "/big": (200, {"Content-Type": "text/plain"}, b"x" * 5000),
    "/json": (200, {"Content-Type": "application/json"}, b'{"a": 1}'),
    "/binary": (200, {"Content-Type": "application/octet-stream"}, b"\x00\x01\x02"),
    "/missing": (404, {"Content-Type": "text/plain"}, b"no such page"),
    "/to-text": (302, {"Location": "/text"}, b""),
    "/to-evil": (302, {"Location": "http://evil.example/steal"}, b""),
    "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b""),
    "/loop": (302, {"Location": "/loop"}, b""),
}


class Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        Handler.hits.append(f"{self.command} {self.path}")
        status, headers, content = ROUTES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _clear_hits() -> None:
    Handler.hits.clear()


async def fetch(settings: HttpFetchSettings, url: str, **kwargs: Any) -> str:
    tool = make_http_fetch(settings)
    result = await tool.run(HttpFetchInput(url=url, **kwargs))  # type: ignore[misc]
    assert isinstance(result, str)
    return result


LOCAL = HttpFetchSettings(allowed_domains=["127.0.0.1"], allow_private=True)


async def test_loopback_is_refused_by_default(base_url: str) -> None:
    settings = HttpFetchSettings(allowed_domains=["127.0.0.1"])
    with pytest.raises(BlockedDestination, match="127.0.0.1, a loopback address"):
        await fetch(settings, base_url + "/text")
    assert Handler.hits == []


async def test_localhost_name_is_refused_by_default(base_url: str) -> None:
    settings = HttpFetchSettings(allowed_domains=["localhost"])
    url = base_url.replace("127.0.0.1", "localhost") + "/text"
    with pytest.raises(BlockedDestination, match="loopback"):
        await fetch(settings, url)
    assert Handler.hits == []


async def test_fetches_text_with_status_and_content_type(base_url: str) -> None:
    output = await fetch(LOCAL, base_url + "/text")
    lines = output.split("\n")
    assert lines[0] == "status: 200 OK"
    assert lines[1] == f"url: {base_url}/text"
    assert lines[2] == "content-type: text/plain; charset=utf-8"
    assert lines[3] == "bytes: 6"
    assert lines[5] == "héllo"


async def test_error_status_is_data(base_url: str) -> None:
    output = await fetch(LOCAL, base_url + "/missing")
    assert output.startswith("status: 404 Not Found")
    assert output.endswith("no such page")


async def test_body_is_capped_by_the_call_and_by_settings(base_url: str) -> None:
    output = await fetch(LOCAL, base_url + "/big", max_bytes=100)
    assert "bytes: 100 (truncated at 100)" in output
    assert output.endswith("\n" + "x" * 100)
    capped = LOCAL.model_copy(update={"max_bytes": 10})
    output = await fetch(capped, base_url + "/big", max_bytes=5000)
    assert "bytes: 10 (truncated at 10)" in output


async def test_head_and_binary_show_no_body(base_url: str) -> None:
    head = await fetch(LOCAL, base_url + "/text", method="HEAD")
    assert head.startswith("status: 200 OK")
    assert "héllo" not in head
    assert Handler.hits == ["HEAD /text"]
    binary = await fetch(LOCAL, base_url + "/binary")
    assert binary.endswith("[binary content not shown]")
    assert "content-type: application/json" in await fetch(LOCAL, base_url + "/json")


async def test_redirects_on_allowed_hosts_are_followed(base_url: str) -> None:
    output = await fetch(LOCAL, base_url + "/to-text")
    assert f"url: {base_url}/text" in output
    assert Handler.hits == ["GET /to-text", "GET /text"]


async def test_redirect_to_a_host_off_the_list_is_not_followed(base_url: str) -> None:
    with pytest.raises(BlockedDestination, match="'evil.example' is not on the allow-list"):
        await fetch(LOCAL, base_url + "/to-evil")


async def test_redirect_to_a_link_local_address_is_refused(base_url: str) -> None:
    # The test server's network is exempt; everything else private stays refused.
    settings = HttpFetchSettings(
        allowed_domains=["127.0.0.1", "169.254.169.254"],
        allowed_networks=[ipaddress.ip_network("127.0.0.0/8")],
    )
    with pytest.raises(BlockedDestination, match="169.254.169.254, a link-local address"):
        await fetch(settings, base_url + "/to-metadata")
    assert Handler.hits == ["GET /to-metadata"]


async def test_redirect_loops_stop(base_url: str) -> None:
    settings = LOCAL.model_copy(update={"max_redirects": 2})
    with pytest.raises(ToolError, match="more than 2 redirects"):
        await fetch(settings, base_url + "/loop")
    assert len(Handler.hits) == 3


async def test_every_resolved_address_is_checked() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    tool = make_http_fetch(HttpFetchSettings(allowed_domains=["example.com"]), resolver=resolver)
    with pytest.raises(BlockedDestination, match="10.0.0.7, a private address"):
        await tool.run(HttpFetchInput(url="http://www.example.com/"))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://127.0.0.1/x", "only http and https"),
        ("http://user:pw@127.0.0.1/x", "credentials"),
        ("http://example.org/", "not on the allow-list"),
        ("http:///nohost", "no host"),
    ],
)
async def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        await fetch(LOCAL, url)


async def test_empty_allow_list_refuses_everything() -> None:
    with pytest.raises(BlockedDestination, match="not on the allow-list"):
        await fetch(HttpFetchSettings(), "https://example.com/")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


def test_exempt_networks() -> None:
    exempt = [ipaddress.ip_network("10.1.0.0/16")]
    assert refusal_reason(ipaddress.ip_address("10.1.2.3"), exempt) is None
    assert refusal_reason(ipaddress.ip_address("10.2.0.1"), exempt) == "private"


def test_allow_list_matches_hosts_and_subdomains() -> None:
    assert host_allowed("example.com", ["example.com"])
    assert host_allowed("API.Example.com.", ["example.com"])
    assert not host_allowed("badexample.com", ["example.com"])
    assert not host_allowed("example.com.evil.net", ["example.com"])
    assert host_allowed("anything.net", ["*"])
    assert not host_allowed("anything.net", [])

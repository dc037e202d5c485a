"""``ClientSession`` reads the environment once per host and still honours it: a proxy for hosts
``NO_PROXY`` does not name, none for those it does, and the CA bundle."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import requests

from connectors.http import ClientSession


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _dead_proxy() -> str:
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", _dead_proxy())
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(requests.exceptions.ProxyError):  # through the (dead) proxy
        ClientSession().get(server, timeout=5)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert ClientSession().get(server, timeout=5).text == "ok"  # straight to the host


def test_the_environment_is_read_once_per_host(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    session = ClientSession()
    assert session.get(server, timeout=5).text == "ok"
    monkeypatch.setenv("HTTP_PROXY", _dead_proxy())  # too late for this session
    assert session.get(server, timeout=5).text == "ok"
    assert "http" not in session.proxies_for(server)
    proxy = _dead_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy)
    assert session.proxies_for("http://elsewhere.example/")["http"] == proxy  # a new host: read now


def test_the_ca_bundle_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/ours.pem")
    assert ClientSession().verify == "/etc/ssl/ours.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert ClientSession().verify is True

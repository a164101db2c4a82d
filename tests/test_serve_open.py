"""`mlopsmortem serve` set-up: `--open` opens the browser once the server listens (never a
console browser), and queries are embedded on one torch thread."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mlopsmortem.web import serve


@pytest.fixture
def opened(monkeypatch):
    # no browser can run here: record what would have been opened
    calls: list[str] = []
    monkeypatch.setattr(serve.webbrowser, "open", lambda url: calls.append(url) or True)
    return calls


def test_the_browser_opens_only_once_the_port_accepts_connections(monkeypatch, opened):
    monkeypatch.setattr(serve.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/-/search"
    thread = serve.open_when_ready(url, "127.0.0.1", port, timeout=20)
    assert thread is not None
    time.sleep(0.6)
    assert opened == []  # nothing listens yet
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        accept = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
        accept.start()
        thread.join(timeout=10)
    assert opened == [url]


def test_without_a_display_the_address_is_printed_instead(monkeypatch, opened, capsys):
    monkeypatch.setattr(serve.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert serve.open_when_ready("http://127.0.0.1:1/-/search", "127.0.0.1", 1) is None
    assert opened == []
    assert "open http://127.0.0.1:1/-/search in a browser" in capsys.readouterr().out


def test_a_port_taken_by_another_program_opens_nothing(monkeypatch, opened):
    monkeypatch.setattr(serve.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        url = f"http://127.0.0.1:{port}/-/search"
        assert serve.open_when_ready(url, "127.0.0.1", port) is None
    assert opened == []


def test_a_server_falling_back_to_torch_embeds_on_one_thread():
    import torch

    from mlopsmortem.web.model import embed_queries_single_threaded

    before = torch.get_num_threads()
    try:
        embed_queries_single_threaded()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

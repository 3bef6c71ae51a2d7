"""Sign-in against a local HTTP server that answers like TradingView's /accounts/signin/."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from pocketquant_pipelines.tradingview.auth import ANONYMOUS_TOKEN, resolve_token, sign_in
from pocketquant_pipelines.tradingview.client import TradingViewClient
from pocketquant_pipelines.tradingview.errors import AuthError

REPLIES = {
    "good": (200, {"user": {"id": 1, "username": "good", "auth_token": "jwt-for-good"}}),
    "robot": (200, {"error": "Please confirm that you are not a robot by clicking the captcha box.",
                    "code": "recaptcha_required"}),
    "twofa": (200, {"error": "2FA_required", "code": "2FA_required"}),
    "wrong": (200, {"error": "Invalid username or password", "code": "invalid_credentials"}),
    "broken": (500, None),
}


class _Handler(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        form = {k: v[0] for k, v in parse_qs(body).items()}
        _Handler.seen.append((self.path, dict(self.headers), form))
        status, reply = REPLIES[form.get("username", "good")]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if reply is not None:
            self.wfile.write(json.dumps(reply).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def signin_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/accounts/signin/"
    server.shutdown()
    server.server_close()


def test_sign_in_posts_the_form_and_returns_the_token(signin_url):
    assert sign_in("good", "pw", signin_url=signin_url) == "jwt-for-good"
    path, headers, form = _Handler.seen[-1]
    assert path == "/accounts/signin/"
    assert form == {"username": "good", "password": "pw", "remember": "on"}
    assert headers["Referer"] == "https://www.tradingview.com"


@pytest.mark.parametrize("user, words", [
    ("robot", "recaptcha_required"),
    ("twofa", "2FA_required"),
    ("wrong", "Invalid username or password"),
    ("broken", "HTTP 500"),
])
def test_sign_in_failures_are_clear_auth_errors(signin_url, user, words):
    with pytest.raises(AuthError) as info:
        sign_in(user, "pw", signin_url=signin_url)
    assert words in str(info.value) and user in str(info.value)
    assert "pw" not in str(info.value).replace(user, "")


def test_token_precedence(signin_url):
    assert asyncio.run(resolve_token("configured-jwt", "good", "pw", signin_url=signin_url)) == (
        "configured-jwt", "configured")
    assert asyncio.run(resolve_token(None, "good", "pw", signin_url=signin_url)) == ("jwt-for-good", "signed_in")
    assert asyncio.run(resolve_token(None, None, None)) == (ANONYMOUS_TOKEN, "anonymous")


def test_client_signs_in_once_and_never_shows_the_token(signin_url):
    client = TradingViewClient(url="ws://127.0.0.1:9/", username="good", password="pw", signin_url=signin_url)
    before = len(_Handler.seen)

    async def twice():
        return await client.auth_token(), await client.auth_token()

    assert asyncio.run(twice()) == ("jwt-for-good", "jwt-for-good")
    assert len(_Handler.seen) == before + 1
    assert "jwt-for-good" not in repr(client)


def test_client_sign_in_failure_surfaces(signin_url):
    client = TradingViewClient(url="ws://127.0.0.1:9/", username="robot", password="pw", signin_url=signin_url)
    with pytest.raises(AuthError, match="recaptcha_required"):
        asyncio.run(client.auth_token())

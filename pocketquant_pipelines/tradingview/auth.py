"""Getting the WebSocket auth token (protocol notes §2).

* No credentials: the anonymous token ``unauthorized_user_token`` (delayed data, 5000 bars).
* ``TRADINGVIEW_AUTH_TOKEN``: used as is (the JWT from a logged-in browser session; the usual
  way round CAPTCHA at sign-in).
* username + password: ``POST /accounts/signin/`` (form ``username``, ``password``,
  ``remember=on``, ``Referer`` header); the JSON reply's ``user.auth_token`` is the token.
  CAPTCHA (``recaptcha_required``), 2FA (``2FA_required``) and bad credentials are AuthError —
  never a silent fall back to anonymous data, which is what tvdatafeed does.

Tokens are never logged: only their kind ("anonymous", "configured", "signed_in").
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.tradingview.errors import AuthError, ConnectionLostError

ANONYMOUS_TOKEN = "unauthorized_user_token"
SIGNIN_URL = "https://www.tradingview.com/accounts/signin/"
ORIGIN = "https://www.tradingview.com"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)

log = get_logger("pocketquant.tradingview.auth")


def sign_in(username: str, password: str, *, signin_url: str = SIGNIN_URL, timeout_s: float = 30.0) -> str:
    """Return the auth token for these credentials, or raise AuthError with the server's words."""
    body = urllib.parse.urlencode({"username": username, "password": password, "remember": "on"}).encode()
    request = urllib.request.Request(
        signin_url,
        data=body,
        method="POST",
        headers={
            "Referer": ORIGIN,
            "Origin": ORIGIN,
            "User-Agent": USER_AGENT,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (https URL)
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        if not raw:
            raise AuthError(f"sign-in for {username!r} failed: HTTP {exc.code}", reason=f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionLostError(f"sign-in request failed: {exc}") from None
    try:
        reply = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        raise AuthError(f"sign-in for {username!r} failed: the reply is not JSON") from None
    return _token_from_reply(username, reply)


def _token_from_reply(username: str, reply: object) -> str:
    if not isinstance(reply, dict):
        raise AuthError(f"sign-in for {username!r} failed: unexpected reply")
    code = reply.get("code")
    error = reply.get("error")
    if code == "recaptcha_required" or error == "recaptcha_required":
        raise AuthError(
            f"sign-in for {username!r} needs a CAPTCHA (recaptcha_required): sign in with a browser "
            "and set TRADINGVIEW_AUTH_TOKEN instead",
            reason=str(error or code),
        )
    if code == "2FA_required" or error == "2FA_required":
        raise AuthError(
            f"sign-in for {username!r} needs two-factor authentication (2FA_required): set "
            "TRADINGVIEW_AUTH_TOKEN from a browser session instead",
            reason="2FA_required",
        )
    if error:
        raise AuthError(f"sign-in for {username!r} failed: {error}", reason=str(error))
    token = (reply.get("user") or {}).get("auth_token") if isinstance(reply.get("user"), dict) else None
    if not token or not isinstance(token, str):
        raise AuthError(f"sign-in for {username!r} failed: no user.auth_token in the reply")
    return token


async def resolve_token(
    auth_token: str | None, username: str | None, password: str | None, *, signin_url: str = SIGNIN_URL,
) -> tuple[str, str]:
    """(token, kind): a configured token wins, then credentials, then anonymous."""
    if auth_token:
        return auth_token, "configured"
    if username:
        if not password:
            raise AuthError(f"a password is needed to sign in as {username!r}")
        token = await asyncio.to_thread(sign_in, username, password, signin_url=signin_url)
        log.info("tradingview_signed_in", username=username)
        return token, "signed_in"
    return ANONYMOUS_TOKEN, "anonymous"

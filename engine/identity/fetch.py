"""Small, bounded HTTP for talking to the OpenID provider: discovery, JWKS, token endpoints.

Standard library only (``urllib``), so the gateway adds no HTTP stack to its dependencies. It
blocks: the engine calls it in a worker thread (``asyncio.to_thread``) so that a slow provider
never stalls the event loop; the CLI calls it directly. Responses are capped in size, redirects
are not followed (every endpoint is named by the discovery document), and plain ``http`` is
refused except on the loopback address, where the demo provider runs.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

MAX_RESPONSE_BYTES = 1024 * 1024
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class FetchError(Exception):
    """The provider could not be reached or answered nonsense; the message is one line."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then surfaces as an HTTPError that names the status


def check_url(url: str) -> None:
    """Refuse anything but https (or http on the loopback address)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    raise FetchError(f"refusing {url!r}: the provider must be reached over https")


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if urllib.parse.urlsplit(url).hostname in _LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))  # never send loopback to a proxy
    return urllib.request.build_opener(*handlers)


def _read_json(response: Any, url: str) -> Any:
    body = response.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise FetchError(f"{url}: the response is larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise FetchError(f"{url}: the response is not JSON") from None


def get_json(url: str, *, timeout: float) -> dict[str, Any]:
    """GET a JSON object; any failure is a ``FetchError`` naming the URL and the reason."""
    check_url(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            data = _read_json(response, url)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{url}: cannot reach the provider: {reason}") from None
    if not isinstance(data, dict):
        raise FetchError(f"{url}: expected a JSON object")
    return data


def post_form(url: str, form: dict[str, str], *, timeout: float,
              basic_auth: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST a form to an OAuth endpoint; returns (status, JSON body) for 2xx and 4xx answers.

    OAuth endpoints report protocol outcomes such as ``authorization_pending`` as a 400 with a
    JSON body, so those are answers, not failures; 5xx, non-JSON and network errors raise.
    """
    check_url(url)
    headers = {"Accept": "application/json",
               "Content-Type": "application/x-www-form-urlencoded"}
    if basic_auth is not None:
        user, secret = (urllib.parse.quote(v, safe="") for v in basic_auth)
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{user}:{secret}".encode()).decode()
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            status, body = response.status, _read_json(response, url)
    except urllib.error.HTTPError as exc:
        if not 400 <= exc.code < 500:
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        try:
            status, body = exc.code, _read_json(exc, url)
        except FetchError:
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{url}: cannot reach the provider: {reason}") from None
    if not isinstance(body, dict):
        raise FetchError(f"{url}: expected a JSON object")
    return status, body


def discover(issuer: str, *, timeout: float) -> dict[str, Any]:
    """The provider's discovery document, checked to name the same issuer (OIDC Discovery §4.3:
    a document that names another issuer could hand us another provider's keys)."""
    doc = get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=timeout)
    if doc.get("issuer") != issuer:
        raise FetchError(f"the discovery document of {issuer} names the issuer "
                         f"{doc.get('issuer')!r}; it must be the same")
    return doc

"""The optional webhook sink: POST a JSON payload to one http(s) URL.

Off unless ``STANCH_NOTIFY_URL`` is set. The URL is never logged in full (webhook URLs usually embed
their secret in the path), redirects are not followed, and a failed post is reported to the caller,
which drops the batch rather than retrying into a storm.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx2 as httpx


def check_notify_url(value: str) -> str:
    """The URL if it is a plain http(s) URL with a host; ValueError naming the problem otherwise."""
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"STANCH_NOTIFY_URL must be an http or https URL, not scheme {parts.scheme or 'none'!r}"
        )
    if not parts.hostname:
        raise ValueError("STANCH_NOTIFY_URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "STANCH_NOTIFY_URL must not carry user:password@; put the secret in the path or token"
        )
    return value.strip()


def redacted(url: str) -> str:
    """Scheme and host only, for logs."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


class WebhookSink:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = check_notify_url(url)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        )

    async def send(self, payload: Mapping[str, Any]) -> int:
        """POST ``payload``; returns the HTTP status, raises on a transport error or a non-2xx answer."""
        resp = await self._http.post(self.url, json=dict(payload))
        if resp.status_code >= 300:
            raise httpx.HTTPStatusError(
                f"webhook answered {resp.status_code}", request=resp.request, response=resp
            )
        return resp.status_code

    async def close(self) -> None:
        await self._http.aclose()

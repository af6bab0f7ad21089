"""The optional webhook sink: POST a JSON payload to one http(s) URL.

Off unless ``--notify-url`` (``STANCH_NOTIFY_URL``) is set; the URL is validated with the other
settings in ``stanch.core.settings``. It is never logged in full (webhook URLs embed their secret in
the path), redirects are not followed, and a failed post is reported to the caller, which drops the
batch rather than retrying into a storm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2 as httpx

from stanch.core.settings import check_notify_url, redact_url


def redacted(url: str) -> str:
    """Scheme and host only, for logs."""
    return redact_url(url)


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

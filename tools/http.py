"""The one HTTP retry layer every connector uses (DESIGN §10: one retry layer per boundary).

Connectors take an optional httpx transport so tests run them against local fake apps, never the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx2
from soctriage.tools.tool_spec import ConnectorError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Retryable(Exception):
    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx2.TransportError)


def path_segment(value: object) -> str:
    """`value` as one URL path segment: `/`, `?`, `#` and `..` in it cannot reach another path of the API."""
    text = quote(str(value), safe="")
    # Dots are left as they are by quote(), and a segment of only dots would move up the path.
    return text.replace(".", "%2E") if text in (".", "..") else text


class HttpConnector:
    """Base of the HTTP connectors: base URL, timeout, bounded retries with backoff, injectable transport."""

    label = "http"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 15.0,
        retries: int = 3,
        retry_wait_s: float = 0.5,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.transport = transport

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> httpx2.Response:
        """Send with retries on 429/5xx/transport errors. 2xx and `accept` statuses are returned; any other
        status (or exhausted retries) raises `ConnectorError` naming the connector, request and status."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        where = f"{self.label} {method} {httpx2.URL(url).path}"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.retry_wait_s, max=max(self.retry_wait_s * 8, 0.001)),
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        try:
            async with httpx2.AsyncClient(transport=self.transport, timeout=self.timeout_s) as client:
                async for attempt in retrying:
                    with attempt:
                        response = await client.request(method, url, headers=dict(headers or {}), **kwargs)
                        if response.status_code in RETRY_STATUSES and response.status_code not in accept:
                            raise _Retryable(response)
        except _Retryable as exc:
            raise ConnectorError(
                f"{where}: HTTP {exc.response.status_code} after {self.retries} attempts"
            ) from exc
        except httpx2.HTTPError as exc:
            raise ConnectorError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if response.is_success or response.status_code in accept:
            return response
        raise ConnectorError(f"{where}: HTTP {response.status_code}: {response.text[:200]}")

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectorError(f"{self.label} {method} {path}: response is not JSON") from exc

"""A streamed response fed by an async iterator that synchronous servers can serve too.

Under ASGI Django iterates the async iterator in the event loop: each chunk goes out as it is made and
no thread waits in between. A synchronous caller (the development server, Django's test client) cannot
iterate an async iterator; Django's own fallback is not reachable through the test client, so this
response runs the iterator to its end in one event loop and then hands the chunks out: the answer
arrives at once instead of streamed, with the same content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse


class _EitherWay:
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self):
        return self._chunks.__aiter__()

    def __iter__(self):
        async def collect() -> list[bytes]:
            return [chunk async for chunk in self._chunks]

        return iter(async_to_sync(collect)())


class AsyncStreamingResponse(StreamingHttpResponse):
    """``StreamingHttpResponse`` for an async iterator, readable with ``for`` as well as ``async for``."""

    @property
    def streaming_content(self):
        content = super().streaming_content
        return _EitherWay(content) if self.is_async else content

    @streaming_content.setter
    def streaming_content(self, value) -> None:
        self._set_streaming_content(value)

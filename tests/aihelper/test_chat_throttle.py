import json

import pytest
from django.core.cache import cache

from aihelper.chat.apis import ChatThrottle
from aihelper.chat.models import ChatMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_per_minute(monkeypatch):
    cache.clear()
    monkeypatch.setattr(ChatThrottle, "THROTTLE_RATES", {"chat": "2/min"})
    yield
    cache.clear()


def test_query_api_is_throttled_per_user(auth_client, client, other_user, two_per_minute):
    body = json.dumps({"message": "disk is full on the database host"})
    codes = [auth_client.post("/api/ai-helper/query", body, content_type="application/json").status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    assert ChatMessage.objects.count() == 4  # the refused question was not answered or stored
    client.force_login(other_user)
    assert client.post("/api/ai-helper/query", body, content_type="application/json").status_code == 200


def test_streaming_chat_shares_the_same_budget(auth_client, two_per_minute):
    body = json.dumps({"message": "certificate expires tomorrow"})
    assert auth_client.post("/api/ai-helper/query", body, content_type="application/json").status_code == 200
    first = auth_client.post("/chat/stream", body, content_type="application/json")
    assert first.status_code == 200
    b"".join(first.streaming_content)
    refused = auth_client.post("/chat/stream", body, content_type="application/json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0 and refused.json()["error"] == "throttled"

"""/api/docs/ (Swagger UI) keeps the site's CSP: nothing inline that 'self'-only styles and scripts would block."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_docs_page_has_no_inline_style_or_script_and_the_policy_stays_strict(auth_client):
    response = auth_client.get("/api/docs/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "style-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    html = response.content.decode()
    assert "<style" not in html
    assert not re.search(r"<[^>]+\sstyle=", html)
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), "every script is a file from 'self'"
    assert "css/api_docs.css" in html

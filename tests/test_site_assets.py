"""Site-wide assets every page relies on: the icon browsers ask for, and the outage page's styles."""

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string


def test_favicon_ico_redirects_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("favicon.svg")
    assert finders.find("favicon.svg")  # what the redirect and <link rel=icon> point to


def test_the_outage_page_uses_the_one_stylesheet_and_no_inline_style():
    html = render_to_string("503.html", {"retry_after_seconds": 5})
    assert "css/app.css" in html and "style=" not in html and "<script" not in html

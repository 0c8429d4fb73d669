"""Two gunicorn instances on different ports share one database: a login on one works on the other."""

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "EMBEDDED_PG_DBNAME": connection.settings_dict["NAME"],
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "STATIC_MANIFEST": "0",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX_SIZE": "10",  # the pool of gunicorn.conf.py, stated: sessions work across pooled instances
    }
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "aihelper.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"gunicorn on {port} did not become healthy")


@pytest.fixture
def two_instances():
    ports = [_free_port(), _free_port()]
    processes = [_start(port) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            _wait_ready(port, process)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_a_session_from_one_instance_works_on_the_other(two_instances, settings):
    if connection.settings_dict.get("EMBEDDED_PGDATA") is None:
        pytest.skip("the instances are started against the embedded database; DATABASE_URL runs skip this")
    port_a, port_b = two_instances
    # The servers use the production hashers, not the fast test one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    UserFactory(username="roaming")
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    login_page = opener.open(f"http://127.0.0.1:{port_a}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "roaming", "password": "correct-horse-battery"}
    ).encode()
    opener.open(urllib.request.Request(f"http://127.0.0.1:{port_a}/accounts/login/", data=form), timeout=10)
    assert any(cookie.name == "sessionid" for cookie in jar)

    # The same cookies (session in the database, CSRF token) are valid on instance B.
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port_b}/api/ai-helper/events",
        data=json.dumps({"events": []}).encode(),
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf},
    )
    try:
        opener.open(request, timeout=10)
        raise AssertionError("an empty batch must be refused")
    except urllib.error.HTTPError as exc:
        # 400 (validation) proves B authenticated the session and accepted the CSRF token;
        # an anonymous request would get 403.
        assert exc.code == 400, exc.read()
    page = opener.open(f"http://127.0.0.1:{port_b}/runbooks/", timeout=10)
    assert page.status == 200 and page.url.endswith("/runbooks/")


def _backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_an_instance_serves_its_requests_from_a_pool_of_kept_connections(two_instances):
    """With DB_POOL_MAX_SIZE set, requests borrow warm PostgreSQL backends instead of starting one each
    (docs/operations.md)."""
    port = two_instances[0]

    def readyz() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as response:
            return json.loads(response.read())

    database = readyz()["checks"]["database"]
    assert database["ok"] and database["pool"]["max"] == 10 and database["pool"]["size"] >= 1
    deadline = time.monotonic() + 15
    while readyz()["checks"]["database"]["pool"]["size"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the pool opens its minimum (2) in the background
    before = _backends()
    for _ in range(30):
        assert readyz()["checks"]["database"]["ok"]
    after = _backends()
    assert before, "the pool keeps its connections open between requests"
    assert before == after, "30 requests that each queried the database were served by the same backends"
    assert len(after) <= 2 * 10

"""Settings for the load benchmarks: the app's settings plus a baseline endpoint (benchmarks.bench_urls).

The production URLconf is untouched; gunicorn is started with DJANGO_SETTINGS_MODULE=benchmarks.bench_settings.
"""

from aihelper.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"

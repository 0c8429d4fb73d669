"""The production entry point (gunicorn with uvicorn workers, gunicorn.conf.py): Django behind the body limit."""

import os

from django.core.asgi import get_asgi_application

from aihelper.core.async_http import BodyLimitASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
application = BodyLimitASGI(get_asgi_application())

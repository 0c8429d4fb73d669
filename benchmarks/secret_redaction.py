"""Secret redaction benchmark: recall on planted secrets, false positives on clean text, latency.

    .venv/bin/python benchmarks/secret_redaction.py [--seed 1729] [--texts 600] [--clean 300] [--long 120] [--rounds 5]

Texts with secrets are generated with a fixed seed in the families incident text comes in (alert bodies,
log excerpts, shell commands, plain questions, env dumps, curl commands, kubeconfig/manifest fragments,
stack traces, JSON payloads). Each plants secrets of realistic shape (right prefixes, lengths,
alphabets) and records the exact span of every planted secret (the ground truth). A planted secret is
caught when, in ``redact(text).text``, neither its value nor any 8-character substring of it survives;
substrings that occur in the text outside the planted secrets, and those wholly inside a format's
public prefix (``sk_live_``, ``github_pat_``, ``pypi-AgEIcHlwaS5vcmc``), do not count. An info row gives
the stricter 6-character criterion. ``recall=`` is over the formats the issue lists; a few extra
realistic formats (Vault tokens, Kubernetes Secret data, a password printed by ``base64 -d``) are
reported apart.

Clean texts: every runbook of ../shared/data/runbooks (public corpus) and every dev query (skipped with
a reason when ../shared is absent), the demo runbooks (runbooks/demo_data/), and generated texts of the
same families with look-alikes (UUIDs, git SHAs, image digests, pod names, ``kubectl get secret my-tls``,
``$DB_PASSWORD``, ``<your-token>``, ``token expired``...). A clean text with any redaction is a false
positive.

Latency: redact() on every text and on 4,000-character texts (concatenations), against a same-run
floor (``str.lower()`` + one ``re.search``) because the machine is shared. No Django set-up needed.
Targets: recall >= 0.99, false positives <= 0.5 % of clean texts, p95 <= 2 ms at 4,000 characters.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import random
import re
import string
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
CORPUS = SHARED / "runbooks" / "prometheus_operator_runbooks.jsonl"
DEV_QUERIES = SHARED / "eval" / "alert_queries_dev.jsonl"
DEMO = ROOT / "runbooks" / "demo_data" / "demo_runbooks.jsonl"

TARGET_RECALL = 0.99
TARGET_FP_RATE = 0.005
TARGET_P95_MS_4000 = 2.0
LONG_CHARS = 4000
GRAM = 8
STRICT_GRAM = 6
PLACEHOLDER = re.compile(r"\[redacted: ([a-z0-9-]+)\]")
BASELINE = re.compile(r"(?:passw(?:or)?d|secret|token|api[_-]?key)[\"']?\s*[:=]")

DIGITS = string.digits
UPPER = string.ascii_uppercase
LOWER_NUM = string.ascii_lowercase + string.digits
UPPER_NUM = UPPER + DIGITS
ALNUM = string.ascii_letters + DIGITS
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
AWS_ID = UPPER + "234567"
K8S_SAFE = "bcdfghjklmnpqrstvwxz2456789"

# name -> listed in the issue (counted in recall=); the others are extra realistic formats, reported apart.
FORMATS: dict[str, bool] = {
    "aws-access-key-id": True,
    "aws-secret-access-key": True,
    "github-ghp": True,
    "github-gho": True,
    "github-pat": True,
    "gitlab-glpat": True,
    "slack-xoxb": True,
    "slack-xoxp": True,
    "slack-webhook": True,
    "stripe-sk-live": True,
    "stripe-rk-live": True,
    "sendgrid-key": True,
    "twilio-account-sid": True,
    "twilio-api-key": True,
    "npm-token": True,
    "pypi-token": True,
    "jwt": True,
    "openai-key": True,
    "anthropic-key": True,
    "google-api-key": True,
    "google-oauth-token": True,
    "azure-account-key": True,
    "pem-rsa-private-key": True,
    "pem-ec-private-key": True,
    "pem-openssh-private-key": True,
    "pem-certificate": True,
    "postgres-url-password": True,
    "mysql-url-password": True,
    "mongodb-srv-url-password": True,
    "redis-url-password": True,
    "amqp-url-password": True,
    "basic-auth-url-password": True,
    "authorization-bearer": True,
    "authorization-basic": True,
    "password-assignment": True,
    "db-password-key": True,
    "api-key-json": True,
    "token-pair": True,
    "cli-password-flag": True,
    "mysql-p": True,
    "redis-cli-a": True,
    "kubeconfig-client-key-data": True,
    "kubeconfig-token": True,
    "high-entropy-quoted": True,
    "discord-bot-token": True,
    "telegram-bot-token": True,
    "mailchimp-key": True,
    "square-oauth-secret": True,
    "square-access-token": True,
    "kubeconfig-client-cert-data": False,
    "vault-token": False,
    "k8s-secret-data": False,
    "decoded-secret-output": False,
}

FAMILIES = ("alert", "log", "shell", "question", "env", "curl", "kubeconfig", "stacktrace", "json")

# Templates: <<name>> is filled with realistic noise, <<S:format>> plants a secret (|json: newlines
# escaped as in a JSON string; |indent: a YAML block scalar indented by four spaces).
SECRET_TEMPLATES: tuple[tuple[str, str], ...] = (
    # AWS
    ("env", "AWS_ACCESS_KEY_ID=<<S:aws-access-key-id>>\nAWS_SECRET_ACCESS_KEY=<<S:aws-secret-access-key>>\n"
            "AWS_DEFAULT_REGION=<<region>>"),
    ("shell", "aws configure set aws_access_key_id <<S:aws-access-key-id>> --profile <<app>>\n"
              "aws configure set aws_secret_access_key <<S:aws-secret-access-key>> --profile <<app>>"),
    ("question", "sts get-caller-identity fails on the runner with SignatureDoesNotMatch, this is "
                 "~/.aws/credentials:\n[default]\naws_access_key_id = <<S:aws-access-key-id>>\n"
                 "aws_secret_access_key = <<S:aws-secret-access-key>>\nregion = <<region>>\nwhat am I missing?"),
    ("log", "<<ts>> ERROR botocore.exceptions.ClientError: An error occurred (InvalidAccessKeyId) when calling "
            "the PutObject operation: The AWS Access Key Id you provided does not exist in our records. "
            "(key <<S:aws-access-key-id>>)"),
    ("json", '{"AccessKey": {"UserName": "<<user>>", "AccessKeyId": "<<S:aws-access-key-id>>", "Status": "Active", '
             '"SecretAccessKey": "<<S:aws-secret-access-key>>", "CreateDate": "<<ts>>"}}'),
    ("alert", "[FIRING:1] IAMAccessKeyUsedFromUnknownIP (security critical)\nGuardDuty finding "
              "UnauthorizedAccess:IAMUser/MaliciousIPCaller\naccess key <<S:aws-access-key-id>> used from <<ip>>"),
    ("stacktrace", 'Traceback (most recent call last):\n  File "/app/storage.py", line 42, in client\n'
                   '    return boto3.client("s3", aws_access_key_id="<<S:aws-access-key-id>>", '
                   'aws_secret_access_key="<<S:aws-secret-access-key>>")\nbotocore.exceptions.'
                   'EndpointConnectionError: Could not connect to the endpoint URL: "https://s3.<<region>>.'
                   'amazonaws.com/"'),
    ("kubeconfig", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: <<app>>-s3\nstringData:\n"
                   "  AWS_ACCESS_KEY_ID: <<S:aws-access-key-id>>\n"
                   "  AWS_SECRET_ACCESS_KEY: <<S:aws-secret-access-key>>"),
    # GitHub
    ("shell", "git clone https://<<S:github-ghp>>@github.com/<<org>>/<<repo>>.git"),
    ("curl", 'curl -s -H "Authorization: token <<S:github-ghp>>" '
             "https://api.github.com/repos/<<org>>/<<repo>>/actions/runs?status=failure"),
    ("shell", "echo <<S:github-ghp>> | gh auth login --with-token"),
    ("env", "GITHUB_TOKEN=<<S:github-gho>>\nGITHUB_REPOSITORY=<<org>>/<<repo>>"),
    ("json", '{"access_token": "<<S:github-gho>>", "token_type": "bearer", "scope": "repo,read:org"}'),
    ("log", "<<ts>> INFO  gh: using oauth app token <<S:github-gho>> for <<org>>/<<repo>>: 401 Bad credentials"),
    ("question", "renovate stopped opening PRs after I rotated the token. The new fine-grained one is "
                 "<<S:github-pat>> - does it need Contents: write on <<org>>/<<repo>>?"),
    ("env", "GH_TOKEN=<<S:github-pat>>"),
    ("curl", 'curl -H "Authorization: Bearer <<S:github-pat>>" -H "X-GitHub-Api-Version: 2022-11-28" '
             "https://api.github.com/orgs/<<org>>/actions/runners"),
    # GitLab
    ("shell", "git remote set-url origin https://oauth2:<<S:gitlab-glpat>>@gitlab.com/<<org>>/<<repo>>.git"),
    ("curl", 'curl --header "PRIVATE-TOKEN: <<S:gitlab-glpat>>" '
             '"https://gitlab.<<domain>>/api/v4/projects/<<n>>/pipelines?status=failed"'),
    ("env", "GITLAB_TOKEN=<<S:gitlab-glpat>>\nCI_SERVER_URL=https://gitlab.<<domain>>"),
    ("question", "the runner registration fails with 403, I'm using <<S:gitlab-glpat>> - is that the wrong kind?"),
    # Slack
    ("env", "SLACK_BOT_TOKEN=<<S:slack-xoxb>>\nSLACK_CHANNEL=#incidents"),
    ("curl", "curl -X POST -H 'Authorization: Bearer <<S:slack-xoxb>>' -H 'Content-type: application/json' "
             "--data '{\"channel\":\"#incidents\",\"text\":\"db failover started\"}' https://slack.com/api/chat.postMessage"),
    ("log", "<<ts>> WARNING slack_sdk.web.base_client: invalid_auth for token <<S:slack-xoxp>>"),
    ("question", "the incident bot posts nothing since yesterday, it uses the user token <<S:slack-xoxp>> - revoked?"),
    ("alert", "receivers:\n- name: slack-oncall\n  slack_configs:\n  - api_url: <<S:slack-webhook>>\n"
              "    channel: '#alerts-<<ns>>'\n    send_resolved: true"),
    ("curl", "curl -X POST -H 'Content-type: application/json' "
             "--data '{\"text\":\"deploy <<short_sha>> rolled back\"}' <<S:slack-webhook>>"),
    ("env", "SLACK_WEBHOOK_URL=<<S:slack-webhook>>"),
    # Stripe
    ("env", "STRIPE_SECRET_KEY=<<S:stripe-sk-live>>\nSTRIPE_WEBHOOK_TOLERANCE=300"),
    ("curl", "curl https://api.stripe.com/v1/charges?limit=3 -u <<S:stripe-sk-live>>:"),
    ("stacktrace", 'Traceback (most recent call last):\n  File "/app/billing/charge.py", line 18, in <module>\n'
                   '    stripe.api_key = "<<S:stripe-sk-live>>"\n  File "/app/billing/charge.py", line 31, in charge\n'
                   '    stripe.PaymentIntent.create(amount=amount, currency="eur")\n'
                   "stripe.error.APIConnectionError: Unexpected error communicating with Stripe."),
    ("json", '{"stripe": {"restricted_key": "<<S:stripe-rk-live>>", "account": "acct_<<alnum16>>"}}'),
    ("question", "which permissions does the restricted key <<S:stripe-rk-live>> need for refunds? they fail with 403"),
    ("env", "STRIPE_RESTRICTED_KEY=<<S:stripe-rk-live>>"),
    # SendGrid
    ("env", "SENDGRID_API_KEY=<<S:sendgrid-key>>\nEMAIL_FROM=noreply@<<domain>>"),
    ("curl", "curl --request POST --url https://api.sendgrid.com/v3/mail/send --header "
             '"Authorization: Bearer <<S:sendgrid-key>>" --header "Content-Type: application/json" --data @mail.json'),
    ("question", "password reset mails are not delivered and sendgrid shows nothing. "
                 "Is <<S:sendgrid-key>> still valid?"),
    ("json", '{"email_backend": "sendgrid", "sendgrid": "<<S:sendgrid-key>>", "from": "noreply@<<domain>>"}'),
    # Twilio
    ("env", "TWILIO_ACCOUNT_SID=<<S:twilio-account-sid>>\nTWILIO_API_KEY=<<S:twilio-api-key>>\n"
            "TWILIO_FROM=+1555<<digits7>>"),
    ("curl", 'curl -X POST "https://api.twilio.com/2010-04-01/Accounts/<<S:twilio-account-sid>>/Messages.json" '
             '--data-urlencode "Body=Pager test" -u "<<S:twilio-api-key>>:$TWILIO_API_SECRET"'),
    ("log", "<<ts>> ERROR sms-sender: twilio returned 20003 Authenticate for account <<S:twilio-account-sid>>"),
    ("question", "SMS paging is broken: twilio says invalid api key for <<S:twilio-api-key>>, did someone rotate it?"),
    # npm
    ("shell", 'echo "//registry.npmjs.org/:_authToken=<<S:npm-token>>" > ~/.npmrc && npm publish --access public'),
    ("question", "npm ci fails with E401 in the pipeline, .npmrc is\n//registry.npmjs.org/:_authToken=<<S:npm-token>>\n"
                 "always-auth=true\nany idea?"),
    ("env", "NPM_TOKEN=<<S:npm-token>>"),
    ("log", "<<ts>> npm ERR! code E401\nnpm ERR! Unable to authenticate, your authentication token seems to be "
            "invalid.\nnpm ERR! //registry.npmjs.org/:_authToken=<<S:npm-token>>"),
    # PyPI
    ("question", "twine upload fails with 403 Invalid or non-existent authentication information. ~/.pypirc:\n"
                 "[pypi]\n  username = __token__\n  password = <<S:pypi-token>>"),
    ("shell", "twine upload -u __token__ -p <<S:pypi-token>> dist/*"),
    ("env", "TWINE_USERNAME=__token__\nTWINE_PASSWORD=<<S:pypi-token>>"),
    ("env", "UV_PUBLISH_TOKEN=<<S:pypi-token>>"),
    # JWT
    ("curl", 'curl -s -H "Authorization: Bearer <<S:jwt>>" https://<<host>>/api/v1/orders/<<uuid>>'),
    ("log", "<<ts>> WARN  gateway: rejected token <<S:jwt>> reason=exp claim in the past"),
    ("json", '{"access_token": "<<S:jwt>>", "expires_in": 3600, "token_type": "Bearer", "scope": "orders:read"}'),
    ("question", "why does the gateway return 403 for this one? <<S:jwt>>"),
    ("curl", "curl -b 'session=<<S:jwt>>' https://<<host>>/account"),
    ("log", '<<ip>> - - [<<clf>>] "GET /api/v1/me?access_token=<<S:jwt>> HTTP/1.1" 401 53 "-" '
            '"python-requests/2.31.0"'),
    # OpenAI, Anthropic, Google
    ("env", "OPENAI_API_KEY=<<S:openai-key>>"),
    ("stacktrace", 'Traceback (most recent call last):\n  File "/app/summarise.py", line 12, in <module>\n'
                   '    client = OpenAI(api_key="<<S:openai-key>>")\n'
                   '  File "/app/summarise.py", line 40, in summarise\n'
                   '    resp = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)\n'
                   "openai.RateLimitError: Error code: 429"),
    ("curl", 'curl https://api.openai.com/v1/models -H "Authorization: Bearer <<S:openai-key>>"'),
    ("question", "is <<S:openai-key>> a project key or a user key? we hit 429 on every call"),
    ("env", "ANTHROPIC_API_KEY=<<S:anthropic-key>>"),
    ("curl", 'curl https://api.anthropic.com/v1/messages -H "x-api-key: <<S:anthropic-key>>" '
             '-H "anthropic-version: 2023-06-01" -H "content-type: application/json" -d @req.json'),
    ("stacktrace", '  File "/app/llm.py", line 9, in <module>\n    client = anthropic.Anthropic(api_key='
                   "\"<<S:anthropic-key>>\")\nanthropic.AuthenticationError: Error code: 401 - {'type': 'error', "
                   "'error': {'type': 'authentication_error', 'message': 'invalid x-api-key'}}"),
    ("question", "the summariser fails with 401 invalid x-api-key, the key is <<S:anthropic-key>>"),
    ("log", "<<ts>> ERROR geocoder: GET https://maps.googleapis.com/maps/api/geocode/json?address=<<city>>"
            "&key=<<S:google-api-key>> -> 403 REQUEST_DENIED"),
    ("json", '{"firebase": {"apiKey": "<<S:google-api-key>>", "authDomain": "<<app>>.firebaseapp.com", '
             '"projectId": "<<app>>-prod"}}'),
    ("env", "GOOGLE_MAPS_API_KEY=<<S:google-api-key>>"),
    ("question", "the maps widget says 'for development purposes only' with key <<S:google-api-key>> - billing?"),
    ("curl", 'curl -H "Authorization: Bearer <<S:google-oauth-token>>" '
             '"https://storage.googleapis.com/storage/v1/b/<<app>>-backups/o?maxResults=5"'),
    ("shell", "$ gcloud auth print-access-token\n<<S:google-oauth-token>>"),
    ("log", "<<ts>> DEBUG google.auth.transport.requests: refreshed credentials, token=<<S:google-oauth-token>> "
            "expiry=<<ts>>"),
    # Azure
    ("env", "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=<<acct>>;"
            "AccountKey=<<S:azure-account-key>>;EndpointSuffix=core.windows.net"),
    ("stacktrace", "Azure.RequestFailedException: Server failed to authenticate the request.\nStatus: 403 "
                   "(AuthenticationFailed)\n   at Azure.Storage.Blobs.BlobRestClient.DownloadAsync()\n"
                   "connection: DefaultEndpointsProtocol=https;AccountName=<<acct>>;AccountKey=<<S:azure-account-key>>;"
                   "EndpointSuffix=core.windows.net"),
    ("json", '{"ConnectionStrings": {"Blob": "DefaultEndpointsProtocol=https;AccountName=<<acct>>;'
             'AccountKey=<<S:azure-account-key>>;EndpointSuffix=core.windows.net"}}'),
    ("shell", "az storage blob list --account-name <<acct>> --account-key <<S:azure-account-key>> "
              "--container-name backups -o table"),
    # PEM blocks (the planted span is the key material; the BEGIN/END lines are not secret)
    ("question", "ssh to the bastion fails with 'invalid format' for this deploy key, what's wrong?\n"
                 "<<S:pem-openssh-private-key>>"),
    ("shell", "cat > /tmp/deploy_key <<'EOF'\n<<S:pem-openssh-private-key>>\nEOF\nchmod 600 /tmp/deploy_key"),
    ("kubeconfig", "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\nmetadata:\n  name: <<app>>-tls\n"
                   "stringData:\n  tls.key: |\n<<S:pem-rsa-private-key|indent>>"),
    ("json", '{"type": "service_account", "project_id": "<<app>>-prod", "private_key": '
             '"<<S:pem-rsa-private-key|json>>", "client_email": "<<app>>@<<app>>-prod.iam.gserviceaccount.com"}'),
    ("shell", "openssl rsa -check -noout -in /dev/stdin <<'EOF'\n<<S:pem-rsa-private-key>>\nEOF"),
    ("log", "<<ts>> ERROR nginx: [emerg] cannot load certificate key \"/etc/nginx/tls.key\": PEM_read_bio_PrivateKey() "
            "failed\ncontent was:\n<<S:pem-ec-private-key>>"),
    ("question", "is this EC key the one matching our ingress cert?\n<<S:pem-ec-private-key>>"),
    ("shell", "kubectl create secret tls <<app>>-tls --cert=tls.crt --key=/dev/stdin <<EOF\n"
              "<<S:pem-ec-private-key>>\nEOF"),
    ("question", "openssl verify says 'unable to get local issuer certificate' for\n<<S:pem-certificate>>"),
    ("log", "<<ts>> WARN cert-manager: certificate <<ns>>/<<app>>-tls not yet valid, got\n<<S:pem-certificate>>"),
    ("stacktrace", "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                   "self-signed certificate in certificate chain\npeer certificate:\n<<S:pem-certificate>>"),
    # Database URLs
    ("stacktrace", 'sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "<<host>>" '
                   "(<<ip>>), port 5432 failed: Connection timed out\n(Background on this error at: "
                   "https://sqlalche.me/e/20/e3q8)\nengine: postgresql+psycopg2://<<user>>:<<S:postgres-url-password>>"
                   "@<<host>>:5432/<<db>>"),
    ("env", "DATABASE_URL=postgres://<<user>>:<<S:postgres-url-password>>@<<host>>:5432/<<db>>?sslmode=require"),
    ("shell", 'psql "postgresql://<<user>>:<<S:postgres-url-password>>@<<host>>:5432/<<db>>" '
              '-c "select count(*) from pg_stat_activity"'),
    ("log", "<<ts>> ERROR worker: could not connect to postgres://<<user>>:<<S:postgres-url-password>>@<<host>>/"
            '<<db>>: FATAL: too many connections for role "<<user>>"'),
    ("env", "SQLALCHEMY_DATABASE_URI=mysql+pymysql://<<user>>:<<S:mysql-url-password>>@<<host>>:3306/<<db>>"),
    ("stacktrace", "django.db.utils.OperationalError: (2003, \"Can't connect to MySQL server on '<<host>>' (110)\")\n"
                   "DATABASE_URL was mysql://<<user>>:<<S:mysql-url-password>>@<<host>>:3306/<<db>>"),
    ("json", '{"datasource": {"url": "mysql://<<user>>:<<S:mysql-url-password>>@<<host>>:3306/<<db>>", "pool": 20}}'),
    ("stacktrace", "pymongo.errors.ServerSelectionTimeoutError: No replica set members found yet, Timeout: 30s\n"
                   'client = MongoClient("mongodb+srv://<<user>>:<<S:mongodb-srv-url-password>>@cluster0.<<mongo>>'
                   '.mongodb.net/<<db>>?retryWrites=true&w=majority")'),
    ("env", "MONGO_URI=mongodb+srv://<<user>>:<<S:mongodb-srv-url-password>>@cluster0.<<mongo>>.mongodb.net/"
            "?retryWrites=true&w=majority"),
    ("question", "atlas alerts on connections maxed, the app uses mongodb+srv://<<user>>:<<S:mongodb-srv-url-password>>"
                 "@cluster0.<<mongo>>.mongodb.net/<<db>> with maxPoolSize=100, too much?"),
    ("env", "REDIS_URL=redis://:<<S:redis-url-password>>@<<host>>:6379/0"),
    ("log", "<<ts>> ERROR celery beat: Connection error: Error 111 connecting to rediss://default:"
            "<<S:redis-url-password>>@<<host>>:6380/1. Connection refused.. Trying again in 4.0 seconds..."),
    ("json", '{"cache": {"backend": "django_redis.cache.RedisCache", "location": '
             '"redis://:<<S:redis-url-password>>@<<host>>:6379/1"}}'),
    ("env", "CELERY_BROKER_URL=amqp://<<user>>:<<S:amqp-url-password>>@rabbitmq.<<ns>>.svc:5672/<<db>>"),
    ("log", "<<ts>> ERROR kombu: consumer: Cannot connect to amqp://<<user>>:<<S:amqp-url-password>>@<<host>>:5672//: "
            "[Errno 104] Connection reset by peer."),
    ("alert", "[FIRING:1] RabbitMQUnreachable (<<ns>> critical)\ndescription: probe amqp://<<user>>:"
              "<<S:amqp-url-password>>@<<host>>:5672/ failed for 5m"),
    ("shell", "pip install --index-url https://<<user>>:<<S:basic-auth-url-password>>@nexus.<<domain>>/repository/"
              "pypi/simple <<app>>==2.3.1"),
    ("curl", "curl -sf https://<<user>>:<<S:basic-auth-url-password>>@artifactory.<<domain>>/artifactory/api/storage/"
             "libs-release"),
    ("log", "<<ts>> ERROR helm: failed to fetch https://ci:<<S:basic-auth-url-password>>@charts.<<domain>>/index.yaml "
            ": 401 Unauthorized"),
    ("alert", "[FIRING:1] BlackboxProbeFailed (<<ns>> warning)\ninstance: https://monitor:"
              "<<S:basic-auth-url-password>>@status.<<domain>>/health\nprobe_http_status_code = 401"),
    # Authorization headers
    ("curl", 'curl -s -H "Authorization: Bearer <<S:authorization-bearer>>" https://<<host>>/api/v2/incidents?status=open'),
    ("log", "<<ts>> DEBUG http.client: send: b'GET /v1/accounts HTTP/1.1\\r\\nHost: <<host>>\\r\\nAuthorization: "
            "Bearer <<S:authorization-bearer>>\\r\\n\\r\\n'"),
    ("json", '{"method": "POST", "url": "https://<<host>>/webhooks", "headers": {"Authorization": '
             '"Bearer <<S:authorization-bearer>>", "X-Request-Id": "<<uuid>>"}}'),
    ("question", "the grafana datasource returns 401, it's set up with header Authorization: Bearer "
                 "<<S:authorization-bearer>>"),
    ("curl", 'curl -H "Authorization: Basic <<S:authorization-basic>>" https://<<host>>/api/health'),
    ("log", "GET /metrics HTTP/1.1\nHost: <<host>>\nAuthorization: Basic <<S:authorization-basic>>\n"
            "User-Agent: Prometheus/2.51.0"),
    ("kubeconfig", "scrape_configs:\n- job_name: <<app>>\n  static_configs:\n  - targets: ['<<host>>:9100']\n"
                   "  http_headers:\n    Authorization:\n      values: ['Basic <<S:authorization-basic>>']"),
    # key = value pairs
    ("log", "<<ts>> DEBUG db: connect(host=<<host>>, port=5432, dbname=<<db>>, user=<<user>>, "
            "password=<<S:password-assignment>>)"),
    ("question", "ldap bind fails, the config is bind_dn=cn=svc,dc=corp password=<<S:password-assignment>> "
                 "url=ldaps://ldap.<<domain>>"),
    ("stacktrace", "Caused by: java.sql.SQLException: Access denied for user '<<user>>'@'<<ip>>' "
                   "(using password: YES)\n"
                   "\tat com.mysql.cj.jdbc.exceptions.SQLError.createSQLException(SQLError.java:130)\n"
                   "url=jdbc:mysql://<<host>>:3306/<<db>>?user=<<user>>&password=<<S:password-assignment>>&useSSL=true"),
    ("env", "[database]\nhost = <<host>>\nport = 5432\nuser = <<user>>\npassword = <<S:password-assignment>>"),
    ("env", "DB_HOST=<<host>>\nDB_USER=<<user>>\nDB_PASSWORD=<<S:db-password-key>>"),
    ("kubeconfig", "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_USER: <<user>>\n"
                   "      POSTGRES_PASSWORD: <<S:db-password-key>>"),
    ("kubeconfig", "env:\n- name: DB_HOST\n  value: <<host>>\n- name: DB_PASSWORD\n  value: <<S:db-password-key>>"),
    ("log", "<<ts>> INFO  config loaded: {DB_HOST: <<host>>, DB_PASSWORD: <<S:db-password-key>>, DB_POOL: 20}"),
    ("json", '{"provider": "pagerduty", "api_key": "<<S:api-key-json>>", "service_id": "P<<UPPER6>>"}'),
    ("json", '{"datadog": {"site": "datadoghq.eu", "apiKey": "<<S:api-key-json>>"}}'),
    ("stacktrace", "requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: https://api.<<domain>>/v1/events\n"
                   "payload={'api_key': '<<S:api-key-json>>', 'event': 'deploy'}"),
    ("log", '<<ts>> INFO  request body: {"api_key": "<<S:api-key-json>>", "query": "status:error"}'),
    ("kubeconfig", "consul:\n  address: <<host>>:8500\n  token: <<S:token-pair>>\n  datacenter: dc1"),
    ("env", "INFLUX_TOKEN=<<S:token-pair>>"),
    ("curl", 'curl -H "X-Auth-Token: <<S:token-pair>>" https://<<host>>/v3/projects'),
    ("log", "<<ts>> DEBUG agent: registering with token: <<S:token-pair>>"),
    ("question", "grafana agent logs 'unauthorized', its config has token: <<S:token-pair>> - wrong scope?"),
    # command-line flags
    ("shell", 'mongosh "mongodb://<<host>>:27017/<<db>>" --username admin --password <<S:cli-password-flag>> '
              '--eval "rs.status()"'),
    ("shell", "docker login <<registry>> -u ci --password <<S:cli-password-flag>>"),
    ("shell", "helm repo add internal https://charts.<<domain>> --username ci --password=<<S:cli-password-flag>>"),
    ("shell", "influx setup --username admin --password <<S:cli-password-flag>> --org <<org>> --bucket metrics "
              "--force"),
    ("shell", "mysql -h <<host>> -u root -p<<S:mysql-p>> -e 'SHOW PROCESSLIST'"),
    ("shell", "kubectl exec -it mysql-0 -n <<ns>> -- mysql -uroot -p<<S:mysql-p>> <<db>>"),
    ("shell", "mysqldump -h <<host>> -u backup -p<<S:mysql-p>> --single-transaction <<db>> > /tmp/<<db>>.sql"),
    ("question", "replica lag: I ran mysql -u repl -p<<S:mysql-p>> -h <<host>> -e 'SHOW REPLICA STATUS\\G' and "
                 "Seconds_Behind_Source is 3600"),
    ("shell", "redis-cli -h <<host>> -p 6379 -a <<S:redis-cli-a>> INFO replication"),
    ("shell", "kubectl exec -n <<ns>> redis-master-0 -- redis-cli -a '<<S:redis-cli-a>>' --no-auth-warning DBSIZE"),
    ("question", "redis-cli -a <<S:redis-cli-a>> ping returns NOAUTH, is requirepass different on the replica?"),
    # kubeconfig
    ("kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: <<cadata>>\n"
                   "    server: https://<<ip>>:6443\n  name: <<cluster>>\ncontexts:\n- context:\n"
                   "    cluster: <<cluster>>\n"
                   "    user: <<user>>\n  name: <<cluster>>\ncurrent-context: <<cluster>>\nusers:\n- name: <<user>>\n"
                   "  user:\n    client-certificate-data: <<S:kubeconfig-client-cert-data>>\n"
                   "    client-key-data: <<S:kubeconfig-client-key-data>>"),
    ("kubeconfig", "users:\n- name: <<user>>@<<cluster>>\n  user:\n"
                   "    client-key-data: <<S:kubeconfig-client-key-data>>"),
    ("kubeconfig", "users:\n- name: <<cluster>>-admin\n  user:\n    token: <<S:kubeconfig-token>>"),
    ("question", "kubectl says 'You must be logged in to the server (Unauthorized)'; my kubeconfig user has\n"
                 "    token: <<S:kubeconfig-token>>\nexpired?"),
    # quoted random strings without a telling key
    ("stacktrace", '  File "/app/crypto.py", line 7, in <module>\n    fernet = Fernet("<<S:high-entropy-quoted>>")\n'
                   "cryptography.fernet.InvalidToken"),
    ("json", '{"webhook": {"url": "https://<<host>>/hooks/deploy", "hmac": "<<S:high-entropy-quoted>>"}}'),
    ("shell", 'export HMAC_SALT="<<S:high-entropy-quoted>>"'),
    ("log", '<<ts>> DEBUG signer: using "<<S:high-entropy-quoted>>" for webhook signatures'),
    # chat bots, mail, payments
    ("env", "DISCORD_BOT_TOKEN=<<S:discord-bot-token>>"),
    ("stacktrace", '  File "/app/bot.py", line 88, in <module>\n    bot.run("<<S:discord-bot-token>>")\n'
                   "discord.errors.LoginFailure: Improper token has been passed."),
    ("question", "the status bot went offline - did someone reset <<S:discord-bot-token>>?"),
    ("curl", 'curl -s "https://api.telegram.org/bot<<S:telegram-bot-token>>/sendMessage" -d chat_id=-100<<digits10>> '
             '-d text="disk full on <<host>>"'),
    ("alert", "receivers:\n- name: telegram-oncall\n  telegram_configs:\n  - bot_token: <<S:telegram-bot-token>>\n"
              "    chat_id: -100<<digits10>>\n    parse_mode: HTML"),
    ("env", "TELEGRAM_BOT_TOKEN=<<S:telegram-bot-token>>"),
    ("env", "MAILCHIMP_API_KEY=<<S:mailchimp-key>>"),
    ("curl", "curl -s -u 'anystring:<<S:mailchimp-key>>' https://us6.api.mailchimp.com/3.0/lists"),
    ("question", "newsletter signup returns 401 from mailchimp, key <<S:mailchimp-key>>"),
    ("env", "SQUARE_APPLICATION_SECRET=<<S:square-oauth-secret>>"),
    ("json", '{"square": {"application_id": "sq0idp-<<b64url22>>", '
             '"application_secret": "<<S:square-oauth-secret>>"}}'),
    ("curl", 'curl https://connect.squareup.com/v2/locations -H "Square-Version: 2024-04-17" '
             '-H "Authorization: Bearer <<S:square-access-token>>"'),
    ("env", "SQUARE_ACCESS_TOKEN=<<S:square-access-token>>"),
    ("question", "payments fail with UNAUTHORIZED, square token <<S:square-access-token>> - sandbox or prod?"),
    # extra formats (not in recall=)
    ("env", "VAULT_ADDR=https://vault.<<domain>>:8200\nVAULT_TOKEN=<<S:vault-token>>"),
    ("shell", "vault login <<S:vault-token>>"),
    ("curl", 'curl -s -H "X-Vault-Token: <<S:vault-token>>" https://vault.<<domain>>:8200/v1/secret/data/<<app>>'),
    ("kubeconfig", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: <<app>>-db\n  namespace: <<ns>>\ntype: Opaque\n"
                   "data:\n  username: <<b64user>>\n  password: <<S:k8s-secret-data>>"),
    ("shell", "$ kubectl get secret <<app>>-db -n <<ns>> -o jsonpath='{.data.password}'\n<<S:k8s-secret-data>>"),
    ("shell", "$ kubectl get secret <<app>>-db -n <<ns>> -o jsonpath='{.data.password}' | base64 -d\n"
              "<<S:decoded-secret-output>>"),
    ("shell", "$ vault kv get -field=password secret/<<app>>/db\n<<S:decoded-secret-output>>"),
)

# Look-alikes: things that read like secrets and are not.
LOOKALIKES: dict[str, tuple[str, ...]] = {
    "alert": (
        "[FIRING:2] KubePodCrashLooping\nnamespace=<<ns>> pod=<<pod>> container=<<app>>\nPod <<ns>>/<<pod>> (<<app>>) "
        'is in waiting state (reason: "CrashLoopBackOff").\nimage: <<registry>>/<<app>>@sha256:<<hex64>>',
        "CertificateExpiringSoon: certificate <<ns>>/<<app>>-tls (secretName: <<app>>-tls-cert) expires in 6 days "
        "(notAfter <<ts>>)",
        "Alert: AuthTokenErrors - rate of 'token expired' responses from <<app>> above 5% for 10m (current 7.3%)",
        "Alert: LoginFailuresHigh - 'password reset failed' events: 132 in 5m on <<host>> (<<ip>>)",
        "KubeJobFailed: Job <<ns>>/backup-<<cronhash>> failed to complete. run_id=<<uuid>>",
        "[RESOLVED] KubeSecretNotFound: secret <<ns>>/<<app>>-token-<<k5>> referenced by pod <<pod>> was not found",
        "Labels: alertname=TargetDown job=<<app>> instance=<<ip>>:9100 fingerprint=<<hex16>>",
        "summary: Vault token TTL below 1h for role <<app>> (expires <<ts>>)",
    ),
    "log": (
        "<<ts>> ERROR [<<rid>>] password reset failed for user <<email>>: token expired",
        '<<ts>> WARN  auth-service request_id=<<uuid>> msg="token expired" sub=<<user>> exp=<<epoch>>',
        'level=info ts=<<ts>> caller=main.go:87 msg="loaded secret" name=<<app>>-tls path=/etc/tls/tls.key',
        "<<ts>> INFO trace_id=<<hex32>> span_id=<<hex16>> GET /api/v1/users/<<uuid>> 200 12ms",
        '<<ts>> FATAL:  password authentication failed for user "<<user>>"',
        "<<ts>> INFO  deploy: checked out <<sha>> (release <<short_sha>>)",
        "[<<ts>>: ERROR/MainProcess] consumer: Cannot connect to amqp://<<user>>:**@<<host>>:5672//: "
        "[Errno 111] Connection refused.",
        "stripe.error.AuthenticationError: Invalid API Key provided: sk_live_********************<<four>>",
        'kubelet: MountVolume.SetUp failed for volume "<<app>>-token-<<k5>>" : secret "<<app>>-token-<<k5>>" not found',
        '<<ip>> - - [<<clf>>] "POST /oauth/token HTTP/1.1" 401 128 "-" "okhttp/4.9.3" rt=0.004',
        'Failed to pull image "<<registry>>/<<app>>@sha256:<<hex64>>": rpc error: code = Unknown desc = not found',
        '{"level":"error","ts":"<<ts>>","msg":"token refresh failed","trace_id":"<<hex32>>","error":"401"}',
        "<<ts>> WARN  session <<uuid>> invalidated: password changed",
    ),
    "shell": (
        "kubectl get secret <<app>>-tls -n <<ns>> -o yaml",
        'kubectl create secret generic <<app>>-db --from-literal=password="$DB_PASSWORD" -n <<ns>>',
        'echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" --password-stdin <<registry>>',
        "mysql -h <<host>> -u root -p",
        'redis-cli -h <<host>> -a "$REDIS_PASSWORD" --no-auth-warning info replication',
        "export TOKEN=$(vault kv get -field=token secret/<<app>>/ci)",
        "git log --oneline -3\n<<short_sha>> fix retry on token expiry\n<<short_sha>> bump chart\n<<short_sha>> Merge "
        "pull request #<<n>>",
        "docker pull <<registry>>/<<app>>@sha256:<<hex64>>",
        "kubectl rollout restart deploy/<<app>> -n <<ns>> && kubectl get pods -l app=<<app>>\n<<pod>>   1/1   "
        "Running   0   12s",
        'psql "postgresql://<<user>>@<<host>>:5432/<<db>>?sslmode=require"',
        "helm upgrade --install <<app>> ./chart --set image.tag=<<short_sha>> --set db.password=${DB_PASSWORD}",
        "openssl x509 -in /etc/tls/tls.crt -noout -enddate",
        "kubectl describe secret <<app>>-token-<<k5>> -n <<ns>>",
    ),
    "question": (
        "How do I rotate <your-token> in the grafana datasource without downtime?",
        "Users get 'password reset failed' since 10:20 UTC, request id <<uuid>> - where do I look?",
        "What does 'token expired' in the ingress logs mean for pod <<pod>>?",
        "The README says to set API_KEY=<your-api-key> in .env - which key does on-call use?",
        "Is the secret referenced by secretName: <<app>>-tls rotated by cert-manager automatically?",
        "Why does `kubectl get secret my-tls` return NotFound in <<ns>>?",
        "The password shows as **** in the admin UI; where is it actually stored?",
        "Deploy <<short_sha>> broke login, revert to <<sha>>?",
        "Which IAM role does the pod <<pod>> assume? The node is <<host>> (<<ip>>).",
    ),
    "env": (
        "DB_PASSWORD=****",
        "DB_PASSWORD_FILE=/run/secrets/db_password",
        "API_TOKEN=${API_TOKEN}",
        "SECRET_NAME=<<app>>-tls",
        "GIT_SHA=<<sha>>",
        "POD_UID=<<uuid>>",
        "TOKEN_TTL=3600",
        "PASSWORD_MIN_LENGTH=12",
        "IMAGE=<<registry>>/<<app>>@sha256:<<hex64>>",
        "SENTRY_RELEASE=<<short_sha>>",
        "REDIS_PASSWORD=$REDIS_PASSWORD",
        "AWS_ROLE_ARN=arn:aws:iam::<<digits12>>:role/<<app>>-irsa",
        "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    ),
    "curl": (
        'curl -s -H "Authorization: Bearer $TOKEN" https://<<host>>/api/v1/status',
        'curl -sS -H "X-Request-Id: <<uuid>>" https://<<host>>/healthz',
        'curl -H "Authorization: Bearer <your-token>" https://api.<<domain>>/v2/incidents',
        "curl -X POST https://<<host>>/api/v1/password/reset -d '{\"email\":\"<<email>>\"}'",
        "curl -s http://localhost:9090/api/v1/query --data-urlencode 'query=up{job=\"<<app>>\"}'",
        'curl -I https://<<host>>/\nHTTP/2 200\netag: "<<hex32>>"\nx-request-id: <<uuid>>',
        'curl -s -u "$GRAFANA_USER:$GRAFANA_PASSWORD" https://grafana.<<domain>>/api/health',
        "curl -s https://<<registry>>/v2/<<app>>/manifests/sha256:<<hex64>>",
    ),
    "kubeconfig": (
        "users:\n- name: <<user>>\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
        '      command: aws\n      args: ["eks", "get-token", "--cluster-name", "<<cluster>>"]',
        "users:\n- name: <<user>>\n  user:\n    token: <your-token>",
        "    client-certificate: /home/<<user>>/.minikube/profiles/minikube/client.crt\n"
        "    client-key: /home/<<user>>/.minikube/profiles/minikube/client.key",
        "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
        "spec:\n  tls:\n  - hosts: [<<host>>]\n    secretName: <<app>>-tls-cert",
        "env:\n- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: <<app>>-db\n      key: password",
        "imagePullSecrets:\n- name: regcred",
        "metadata:\n  uid: <<uuid>>\n  resourceVersion: \"<<n>>\"\n  name: <<pod>>",
    ),
    "stacktrace": (
        'psycopg2.OperationalError: connection to server at "<<host>>" (<<ip>>), port 5432 failed: FATAL:  '
        'password authentication failed for user "<<user>>"',
        'Traceback (most recent call last):\n  File "/app/cache.py", line 21, in get\n    return self.client.get(key)\n'
        "redis.exceptions.AuthenticationError: invalid username-password pair or user is disabled.",
        "Caused by: org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"<<user>>\"\n"
        "\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)",
        "jwt.exceptions.ExpiredSignatureError: Signature has expired",
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) timeout expired\nengine: "
        "postgresql+psycopg2://<<user>>:***@<<host>>:5432/<<db>>",
        "openai.AuthenticationError: Error code: 401 - {'error': {'message': 'Incorrect API key provided: "
        "sk-proj-********************<<four>>.'}}",
        "KeyError: 'SECRET_KEY'",
        "django.core.exceptions.ImproperlyConfigured: Set the DB_PASSWORD environment variable\n"
        '  File "/app/settings.py", line 30',
    ),
    "json": (
        '{"id": "<<uuid>>", "status": "firing", "fingerprint": "<<hex16>>", "labels": {"alertname": '
        '"KubePodCrashLooping", "pod": "<<pod>>"}, "startsAt": "<<ts>>"}',
        '{"ref": "refs/heads/main", "before": "<<sha>>", "after": "<<sha>>", "head_commit": {"message": '
        '"fix: retry on token expired"}}',
        '{"token_type": "Bearer", "expires_in": 3600, "scope": "read write", "access_token": "<redacted>"}',
        '{"image": "<<registry>>/<<app>>@sha256:<<hex64>>", "digest": "sha256:<<hex64>>"}',
        '{"password": "****", "user": "<<user>>"}',
        '{"request_id": "<<uuid>>", "error": "password reset failed", "code": "TOKEN_EXPIRED"}',
        '{"secretName": "<<app>>-tls", "namespace": "<<ns>>"}',
        '{"trace_id": "<<hex32>>", "span_id": "<<hex16>>", "name": "GET /api/v1/orders"}',
        '{"api_key": null, "token": "${TOKEN}", "password_changed_at": "<<ts>>"}',
    ),
}

# Context around the core of a text, per family.
WRAPPERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alert": (
        ("[FIRING:1] <<alertname>> (<<ns>> <<severity>>)\nLabels:\n - alertname = <<alertname>>\n"
         " - namespace = <<ns>>\n - pod = <<pod>>\nAnnotations:",
         "Alert: <<alertname>> - severity <<severity>> - started <<ts>>", ""),
        ("Source: http://prometheus-k8s-0:9090/graph?g0.expr=up%7Bjob%3D%22<<app>>%22%7D+%3D%3D+0&g0.tab=1",
         "Runbook: https://runbooks.<<domain>>/<<alertname>>", "fingerprint: <<hex16>>", ""),
    ),
    "log": (
        ("<<ts>> INFO  <<app>> request_id=<<uuid>> GET /healthz 200 <<ms>>ms",
         "<<ts>> WARN  <<app>> slow query took <<ms>>ms (threshold 500ms)",
         "<<ts>> INFO  kubelet: Started container <<app>> in pod <<pod>>", ""),
        ("<<ts>> ERROR <<app>> upstream connect error or disconnect/reset before headers. "
         "reset reason: connection failure",
         "<<ts>> INFO  trace_id=<<hex32>> span_id=<<hex16>> handled POST /api/v1/orders in <<ms>>ms", ""),
    ),
    "shell": (
        ("$ kubectl get pods -n <<ns>> | grep <<app>>\n<<pod>>   0/1   CrashLoopBackOff   7   14m",
         "$ kubectl config current-context\n<<cluster>>", "$ cd ~/src/<<repo>> && git pull", ""),
        ("Error from server (Forbidden): pods is forbidden", "connection refused", "exit status 1", ""),
    ),
    "question": (
        ("hey, on-call here.", "Quick question during INC-<<n>>:", "Context: <<alertname>> fired at <<ts>>.", ""),
        ("thanks!", "(prod, <<cluster>>)", ""),
    ),
    "env": (
        ("HOSTNAME=<<pod>>\nKUBERNETES_SERVICE_HOST=10.96.0.1\nKUBERNETES_PORT=tcp://10.96.0.1:443",
         "LOG_LEVEL=info\nPORT=8080\nAPP_ENV=production", "GIT_SHA=<<sha>>\nPOD_UID=<<uuid>>", ""),
        ("HOME=/home/app\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nLANG=C.UTF-8",
         "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.monitoring:4317\nTZ=UTC", "WEB_CONCURRENCY=4", ""),
    ),
    "curl": (
        ("$ date -u\n<<ts>>", ""),
        ('< HTTP/1.1 401 Unauthorized\n< content-type: application/json\n< x-request-id: <<uuid>>\n'
         '{"error": "invalid_token"}', "< HTTP/2 403", "curl: (22) The requested URL returned error: 401", ""),
    ),
    "kubeconfig": (("# ~/.kube/config on <<user>>'s laptop", "---", ""), ("---", "")),
    "stacktrace": (
        ("<<ts>> ERROR [<<app>>] Unhandled exception in worker <<pod>>",
         'Traceback (most recent call last):\n  File "/usr/local/lib/python3.12/site-packages/celery/app/trace.py", '
         "line 453, in trace_task\n    R = retval = fun(*args, **kwargs)", ""),
        ("", "<<ts>> INFO  worker <<pod>> restarting"),
    ),
    "json": (("", "payload:", "webhook body from the alertmanager receiver log:", "response:"), ("",)),
}

WORDS = ("Summer", "Winter", "Falcon", "Orange", "Rocket", "Harbor", "Tiger", "Maple", "Copper", "Phoenix",
         "Sunset", "Granite", "Velvet", "Meadow", "Cobalt", "Juniper")
APPS = ("checkout", "payments-api", "web-frontend", "orders", "auth-service", "search", "billing-worker",
        "notifications", "inventory", "gateway")
NAMESPACES = ("prod", "payments", "monitoring", "platform", "default", "staging", "data")
USERS = ("app", "svc_orders", "deploy", "admin", "grafana", "reporting", "etl", "billing")
DOMAINS = ("example.com", "acme.io", "corp.example.net", "shop.example.org")
REGIONS = ("eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2")
ALERTNAMES = ("KubePodCrashLooping", "TargetDown", "PostgresReplicationLag", "HighErrorRate", "KubeJobFailed",
              "NodeFilesystemSpaceFillingUp", "RedisDown", "CertificateExpiringSoon")

MARK = re.compile(r"<<(?:S:([a-z0-9-]+)(?:\|([a-z]+))?|([A-Za-z0-9_]+))>>")


@dataclass
class Planted:
    fmt: str
    start: int
    end: int
    value: str
    public: int  # length of a public prefix (sk_live_ ...) whose substrings do not count as leaks


@dataclass
class Sample:
    name: str
    family: str
    text: str
    planted: list[Planted] = field(default_factory=list)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Gen:
    """Realistic noise and secrets from one seeded generator."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        noise = {
            "ts": self.ts, "clf": self.clf, "epoch": lambda: str(self.rng.randint(1_714_000_000, 1_720_000_000)),
            "host": self.host, "ip": self.ip, "pod": self.pod, "ns": lambda: self.pick(NAMESPACES),
            "app": lambda: self.pick(APPS), "user": lambda: self.pick(USERS),
            "db": lambda: self.pick(APPS).split("-")[0],
            "email": lambda: f"{self.pick(('alice', 'bob', 'chen', 'dana', 'eve'))}@{self.pick(DOMAINS)}",
            "uuid": self.uuid, "rid": lambda: self.chars(HEX, 16), "sha": lambda: self.chars(HEX, 40),
            "short_sha": lambda: self.chars(HEX, 7), "hex16": lambda: self.chars(HEX, 16),
            "hex32": lambda: self.chars(HEX, 32), "hex64": lambda: self.chars(HEX, 64),
            "region": lambda: self.pick(REGIONS), "cluster": lambda: f"{self.pick(('prod', 'staging'))}-"
            f"{self.pick(REGIONS)}", "registry": lambda: self.pick(("ghcr.io/acme", "registry.example.com",
                                                                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com")),
            "org": lambda: self.pick(("acme", "platform-team", "shop")), "repo": lambda: self.pick(APPS),
            "n": lambda: str(self.rng.randint(10, 9999)), "ms": lambda: str(self.rng.randint(3, 4000)),
            "digits7": lambda: self.chars(DIGITS, 7), "digits10": lambda: self.chars(DIGITS, 10),
            "digits12": lambda: self.chars(DIGITS, 12),
            "acct": lambda: self.pick(APPS).replace("-", "") + self.chars(LOWER_NUM, 4),
            "mongo": lambda: self.chars(LOWER_NUM, 5), "domain": lambda: self.pick(DOMAINS),
            "alertname": lambda: self.pick(ALERTNAMES), "severity": lambda: self.pick(("warning", "critical")),
            "city": lambda: self.pick(("Berlin", "Lisbon", "Austin", "Osaka")),
            "alnum16": lambda: self.chars(ALNUM, 16), "b64url22": lambda: self.chars(B64URL, 22),
            "UPPER6": lambda: self.chars(UPPER_NUM, 6), "b64user": lambda: base64.b64encode(
                self.pick(USERS).encode()).decode(), "cadata": lambda: base64.b64encode(
                    self.pem("CERTIFICATE", self.cert_body()).encode()).decode(),
            "cronhash": lambda: self.chars(DIGITS, 8), "k5": lambda: self.chars(K8S_SAFE, 5),
            "four": lambda: self.chars(ALNUM, 4),
        }
        self.noise = noise

    # -- noise -------------------------------------------------------------------------------------------
    def pick(self, seq):
        return self.rng.choice(seq)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ts(self) -> str:
        seconds = self.rng.randint(0, 30 * 86400)
        day, rest = divmod(seconds, 86400)
        return (f"2024-05-{day + 1:02d}T{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}."
                f"{self.rng.randint(0, 999):03d}Z")

    def clf(self) -> str:
        return f"{self.rng.randint(1, 28):02d}/May/2024:{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}:" \
               f"{self.rng.randint(0, 59):02d} +0000"

    def ip(self) -> str:
        return self.pick((f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
                          f"172.16.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
                          f"203.0.113.{self.rng.randint(1, 254)}"))

    def host(self) -> str:
        app, ns = self.pick(APPS), self.pick(NAMESPACES)
        return self.pick((f"{app}-db.{ns}.svc.cluster.local", f"pg-{self.rng.randint(1, 9)}.internal",
                          f"ip-10-0-{self.rng.randint(0, 255)}-{self.rng.randint(1, 254)}.{self.pick(REGIONS)}"
                          ".compute.internal", f"{app}.{self.pick(DOMAINS)}", f"redis-master.{ns}.svc"))

    def pod(self) -> str:
        return f"{self.pick(APPS)}-{self.chars(K8S_SAFE, 10)}-{self.chars(K8S_SAFE, 5)}"

    # -- secrets -----------------------------------------------------------------------------------------
    def password(self, url_safe: bool = False) -> str:
        style = self.rng.random()
        symbols = "!*-_.~" if url_safe else "!#$%&*?@^-_."
        if style < 0.4:
            return self.chars(ALNUM, self.rng.randint(16, 28))
        if style < 0.75:
            return self.pick(WORDS) + self.chars(DIGITS, self.rng.randint(2, 4)) + self.pick(symbols)
        return self.chars(ALNUM, 2) + self.chars(ALNUM + symbols, self.rng.randint(10, 22))

    def pem(self, label: str, body: str) -> str:
        return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"

    def wrap(self, raw: bytes, width: int = 64) -> str:
        text = base64.b64encode(raw).decode()
        return "\n".join(text[i : i + width] for i in range(0, len(text), width))

    def rsa_body(self) -> tuple[str, str]:
        if self.rng.random() < 0.5:
            return "RSA PRIVATE KEY", self.wrap(bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1180))
        prefix = bytes.fromhex("308204be020100300d06092a864886f70d0101010500048204a8")
        return "PRIVATE KEY", self.wrap(prefix + self.rng.randbytes(1190))

    def ec_body(self) -> str:
        return self.wrap(bytes.fromhex("30770201010420") + self.rng.randbytes(32)
                         + bytes.fromhex("a00a06082a8648ce3d030107a14403420004") + self.rng.randbytes(64))

    def openssh_body(self) -> str:
        raw = (b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
               b"\x00\x00\x003\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
               + b"\x00\x00\x00\x88" + self.rng.randbytes(8) + b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 "
               + self.rng.randbytes(104) + b"\x01\x02\x03\x04\x05")
        return self.wrap(raw, 70)

    def cert_body(self) -> str:
        return self.wrap(bytes.fromhex("308203") + self.rng.randbytes(2) + bytes.fromhex("308202")
                         + self.rng.randbytes(900))

    def jwt(self, kubernetes: bool = False) -> str:
        now = self.rng.randint(1_714_000_000, 1_720_000_000)
        if kubernetes:
            header = {"alg": "RS256", "kid": self.chars(B64URL, 43)}
            ns, app = self.pick(NAMESPACES), self.pick(APPS)
            payload = {"aud": ["https://kubernetes.default.svc.cluster.local"], "exp": now + 3600, "iat": now,
                       "iss": "https://kubernetes.default.svc.cluster.local",
                       "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": app, "uid": self.uuid()}},
                       "nbf": now, "sub": f"system:serviceaccount:{ns}:{app}"}
            signature = 256
        else:
            alg = self.pick(("HS256", "RS256", "RS256", "ES256"))
            header = {"alg": alg, "typ": "JWT"} if alg == "HS256" else {"alg": alg, "typ": "JWT",
                                                                          "kid": self.chars(B64URL, 22)}
            payload = {"sub": self.uuid(), "iat": now, "exp": now + 900, "iss": f"https://auth.{self.pick(DOMAINS)}",
                       "scope": "orders:read orders:write"}
            signature = {"HS256": 32, "RS256": 256, "ES256": 64}[alg]
        parts = [json.dumps(part, separators=(",", ":")).encode() for part in (header, payload)]
        return ".".join([b64url(parts[0]), b64url(parts[1]), b64url(self.rng.randbytes(signature))])

    def secret(self, fmt: str) -> tuple[str, str, str, int]:
        """(text before, secret value, text after, public prefix length): before/after are not secret."""
        r, c = self.rng, self.chars
        value, public, before, after = "", 0, "", ""
        if fmt == "aws-access-key-id":
            value = self.pick(("AKIA", "AKIA", "AKIA", "ASIA")) + c(AWS_ID, 16)
        elif fmt == "aws-secret-access-key":
            value = c(ALNUM + "/+", 40)
        elif fmt in ("github-ghp", "github-gho"):
            value = fmt[-3:] + "_" + c(ALNUM, 36)
        elif fmt == "github-pat":
            value, public = "github_pat_11" + c(UPPER_NUM, 20) + "_" + c(ALNUM, 59), 11
        elif fmt == "gitlab-glpat":
            value, public = "glpat-" + c(B64URL, 20), 6
        elif fmt == "slack-xoxb":
            value = f"xoxb-{c(DIGITS, r.randint(10, 13))}-{c(DIGITS, 13)}-{c(ALNUM, 24)}"
        elif fmt == "slack-xoxp":
            value = f"xoxp-{c(DIGITS, 11)}-{c(DIGITS, 11)}-{c(DIGITS, 13)}-{c(HEX, 32)}"
        elif fmt == "slack-webhook":
            before = "https://hooks.slack.com/services/"
            value = f"T{c(UPPER_NUM, 8)}/B{c(UPPER_NUM, 10)}/{c(ALNUM, 24)}"
        elif fmt in ("stripe-sk-live", "stripe-rk-live"):
            body = c(ALNUM, 24) if r.random() < 0.4 else "51" + c(ALNUM, 97)
            value, public = fmt[7] + "k_live_" + body, 8
        elif fmt == "sendgrid-key":
            value, public = f"SG.{c(B64URL, 22)}.{c(B64URL, 43)}", 3
        elif fmt == "twilio-account-sid":
            value = "AC" + c(HEX, 32)
        elif fmt == "twilio-api-key":
            value = "SK" + c(HEX, 32)
        elif fmt == "npm-token":
            value = "npm_" + c(ALNUM, 36) if r.random() < 0.85 else self.uuid()
        elif fmt == "pypi-token":
            value, public = "pypi-AgEIcHlwaS5vcmcCJ" + c(B64URL, r.randint(140, 200)), 20
        elif fmt == "jwt":
            value = self.jwt()
        elif fmt == "openai-key":
            if r.random() < 0.4:
                value = "sk-" + c(ALNUM, 20) + "T3BlbkFJ" + c(ALNUM, 20)
            else:
                value, public = "sk-proj-" + c(B64URL, 74) + "T3BlbkFJ" + c(B64URL, 74), 8
        elif fmt == "anthropic-key":
            value, public = "sk-ant-api03-" + c(B64URL, 93) + "AA", 13
        elif fmt == "google-api-key":
            value = "AIzaSy" + c(B64URL, 33)
        elif fmt == "google-oauth-token":
            value, public = "ya29.a0" + c(B64URL, r.randint(150, 220)), 7
        elif fmt == "azure-account-key":
            value = base64.b64encode(r.randbytes(64)).decode()
        elif fmt == "pem-rsa-private-key":
            label, value = self.rsa_body()
            before, after = f"-----BEGIN {label}-----\n", f"\n-----END {label}-----"
        elif fmt == "pem-ec-private-key":
            value, before, after = self.ec_body(), "-----BEGIN EC PRIVATE KEY-----\n", "\n-----END EC PRIVATE KEY-----"
        elif fmt == "pem-openssh-private-key":
            value = self.openssh_body()
            before, after = "-----BEGIN OPENSSH PRIVATE KEY-----\n", "\n-----END OPENSSH PRIVATE KEY-----"
        elif fmt == "pem-certificate":
            value, before, after = self.cert_body(), "-----BEGIN CERTIFICATE-----\n", "\n-----END CERTIFICATE-----"
        elif fmt in ("postgres-url-password", "mysql-url-password", "mongodb-srv-url-password", "redis-url-password",
                     "amqp-url-password", "basic-auth-url-password"):
            value = self.password(url_safe=True)
        elif fmt == "authorization-bearer":
            value = c(B64URL, r.randint(32, 64)) if r.random() < 0.6 else c(ALNUM, 40)
        elif fmt == "authorization-basic":
            value = base64.b64encode(f"{self.pick(USERS)}:{self.password()}".encode()).decode()
        elif fmt in ("password-assignment", "db-password-key", "cli-password-flag", "mysql-p", "redis-cli-a",
                     "decoded-secret-output"):
            value = self.password()
        elif fmt == "api-key-json":
            value = c(HEX, 32) if r.random() < 0.5 else c(ALNUM, r.randint(32, 40))
        elif fmt == "token-pair":
            value = self.uuid() if r.random() < 0.25 else c(ALNUM, r.randint(32, 40))
        elif fmt == "kubeconfig-client-key-data":
            label, body = self.rsa_body() if r.random() < 0.5 else ("EC PRIVATE KEY", self.ec_body())
            value = base64.b64encode(self.pem(label, body).encode()).decode()
        elif fmt == "kubeconfig-client-cert-data":
            value = base64.b64encode(self.pem("CERTIFICATE", self.cert_body()).encode()).decode()
        elif fmt == "kubeconfig-token":
            kind = r.random()
            if kind < 0.6:
                value = self.jwt(kubernetes=True)
            elif kind < 0.8:
                url = (f"https://sts.{self.pick(REGIONS)}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
                       f"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA{c(AWS_ID, 16)}%2F20240503%2F"
                       f"eu-west-1%2Fsts%2Faws4_request&X-Amz-Date=20240503T101500Z&X-Amz-Expires=60&"
                       f"X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature={c(HEX, 64)}")
                value, public = "k8s-aws-v1." + b64url(url.encode()), 11
            else:
                value = f"kubeconfig-u-{c(LOWER_NUM, 5)}:{c(LOWER_NUM, 54)}"
        elif fmt == "high-entropy-quoted":
            kind = r.random()
            value = (base64.urlsafe_b64encode(r.randbytes(32)).decode() if kind < 0.4
                     else c(HEX, self.pick((40, 64))) if kind < 0.7 else c(ALNUM, r.randint(32, 48)))
        elif fmt == "discord-bot-token":
            user_id = str(r.randint(10**16, 10**19 - 1))
            value = f"{b64url(user_id.encode())}.{c(B64URL, 6)}.{c(B64URL, self.pick((27, 38)))}"
        elif fmt == "telegram-bot-token":
            value = f"{c(DIGITS[1:], 1)}{c(DIGITS, r.randint(7, 9))}:AA{c(B64URL, 33)}"
        elif fmt == "mailchimp-key":
            value = f"{c(HEX, 32)}-us{r.randint(1, 21)}"
        elif fmt == "square-oauth-secret":
            value, public = "sq0csp-" + c(B64URL, 43), 7
        elif fmt == "square-access-token":
            if r.random() < 0.7:
                value = "EAAA" + c(B64URL, 60)
            else:
                value, public = "sq0atp-" + c(B64URL, 22), 7
        elif fmt == "vault-token":
            if r.random() < 0.7:
                value, public = "hvs.CAESI" + c(B64URL, 86), 9
            else:
                value = "hvs." + c(ALNUM, 24)
        elif fmt == "k8s-secret-data":
            value = base64.b64encode(self.password().encode()).decode()
        else:
            raise ValueError(fmt)
        return before, value, after, public

    # -- texts -------------------------------------------------------------------------------------------
    def render(self, template: str, planted: list[Planted], offset: int) -> str:
        """Fill a template; planted secrets are appended with their spans shifted by ``offset``."""
        out: list[str] = []
        length = offset
        position = 0
        for match in MARK.finditer(template):
            literal = template[position : match.start()]
            out.append(literal)
            length += len(literal)
            position = match.end()
            fmt, modifier, name = match.groups()
            if name:
                value = self.noise[name]()
                out.append(value)
                length += len(value)
                continue
            before, value, after, public = self.secret(fmt)
            if modifier == "json":
                before, value, after = (part.replace("\n", "\\n") for part in (before, value, after))
                after += "\\n"
            elif modifier == "indent":
                before, value, after = ("    " + before.replace("\n", "\n    "), value.replace("\n", "\n    "),
                                        after.replace("\n", "\n    "))
            start = length + len(before)
            planted.append(Planted(fmt, start, start + len(value), value, public))
            out += [before, value, after]
            length += len(before) + len(value) + len(after)
        out.append(template[position:])
        return "".join(out)

    def wrapped(self, family: str, cores: list[str], planted: list[Planted] | None = None) -> str:
        """Family context before and after the core templates (rendered in order, spans tracked)."""
        before_pool, after_pool = WRAPPERS[family]
        planted = planted if planted is not None else []
        text = self.render(self.pick(before_pool), planted, 0)
        for core in cores:
            if text:
                text += "\n"
            text += self.render(core, planted, len(text))
        after = self.render(self.pick(after_pool), planted, len(text))
        return text + ("\n" + after if after else "")


def secret_samples(gen: Gen, count: int) -> list[Sample]:
    by_format: dict[str, list[tuple[str, str]]] = {fmt: [] for fmt in FORMATS}
    for family, template in SECRET_TEMPLATES:
        for match in MARK.finditer(template):
            if match.group(1):
                by_format[match.group(1)].append((family, template))
    missing = [fmt for fmt, templates in by_format.items() if not templates]
    assert not missing, f"formats without a template: {missing}"
    formats = list(FORMATS)
    samples = []
    for index in range(count):
        family, template = gen.pick(by_format[formats[index % len(formats)]])
        cores = [template]
        if gen.rng.random() < 0.25:  # a second secret of the same family in the same message
            cores.append(gen.pick([t for f, t in SECRET_TEMPLATES if f == family]))
        planted: list[Planted] = []
        text = gen.wrapped(family, cores, planted)
        samples.append(Sample(f"gen-secret-{index:04d}", family, text, planted))
    return samples


def lookalike_samples(gen: Gen, count: int) -> list[Sample]:
    samples = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        cores = gen.rng.sample(LOOKALIKES[family], k=min(len(LOOKALIKES[family]), gen.rng.randint(2, 4)))
        samples.append(Sample(f"gen-clean-{index:04d}", family, gen.wrapped(family, cores)))
    return samples


def runbook_text(row: dict) -> str:
    steps = []
    for step in row.get("steps") or []:
        if isinstance(step, dict):
            steps.append("\n".join(str(step[key]) for key in ("title", "detail", "command") if step.get(key)))
        else:
            steps.append(str(step))
    parts = [row.get("title", ""), row.get("description", ""), "\n".join(steps), row.get("body_markdown", "")]
    return "\n\n".join(part for part in parts if part)


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def clean_sources(lookalikes: list[Sample]) -> dict[str, list[Sample]]:
    sources: dict[str, list[Sample]] = {}
    if CORPUS.is_file() and DEV_QUERIES.is_file():
        sources["corpus runbooks"] = [Sample(row["slug"], "runbook", runbook_text(row)) for row in read_jsonl(CORPUS)]
        sources["dev queries"] = [Sample(row["id"], "query", row["query"]) for row in read_jsonl(DEV_QUERIES)]
    else:
        print(f"SKIP corpus and dev queries: ../shared/data is absent ({SHARED}); "
              "the public runbooks and alert queries live there.")
    sources["demo runbooks"] = [Sample(row["slug"], "runbook", runbook_text(row)) for row in read_jsonl(DEMO)]
    sources["generated look-alikes"] = lookalikes
    return sources


# -- measurement -----------------------------------------------------------------------------------------
def redaction_spans(original: str, output: str) -> list[tuple[int, int, str]]:
    """Where in ``original`` each placeholder of ``output`` stands (the literal text between them aligns)."""
    parts = PLACEHOLDER.split(output)
    if len(parts) == 1:
        return []
    literals, kinds = parts[0::2], parts[1::2]
    pattern = re.escape(literals[0]) + "".join(f"(.+?){re.escape(literal)}" for literal in literals[1:])
    match = re.fullmatch(pattern, original, re.DOTALL)
    if match is None:
        return [(0, len(original), kind) for kind in kinds]
    return [(match.start(i + 1), match.end(i + 1), kind) for i, kind in enumerate(kinds)]


def grams(text: str, n: int) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def survivor(planted: Planted, output: str, out_grams: set[str], background: set[str], n: int) -> str | None:
    """The part of a planted secret still readable in the output (None: caught)."""
    if planted.value in output:
        return planted.value
    value = planted.value
    for i in range(len(value) - n + 1):
        gram = value[i : i + n]
        if i + n <= planted.public or gram in background:
            continue
        if gram in out_grams:
            return gram
    return None


def excerpt(text: str, start: int, end: int, width: int = 50, limit: int = 40) -> str:
    inner = text[start:end]
    if len(inner) > limit:
        inner = inner[: limit - 12] + "…" + inner[-8:]
    left = text[max(0, start - width) : start]
    right = text[end : end + width]
    head = "…" if start > width else ""
    tail = "…" if end + width < len(text) else ""
    flat = f"{head}{left}«{inner}»{right}{tail}"
    return flat.replace("\r", "\\r").replace("\n", "⏎").replace("\t", "⇥")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def print_table(title: str, headers: list[str], rows: list[list], left: tuple[int, ...] = (0,)) -> None:
    """Plain-text table: columns in ``left`` left-aligned, the others (numbers) right-aligned."""
    cells = [[f"{cell:.3f}" if isinstance(cell, float) else str(cell) for cell in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print(line(row))


@dataclass
class Outcome:
    sample: Sample
    planted: Planted
    caught: bool
    caught_strict: bool
    survived: str | None
    output: str
    kinds: tuple[str, ...]


def evaluate_secrets(redact, samples: list[Sample]) -> tuple[list[Outcome], list[tuple[Sample, int, int, str]]]:
    outcomes, over = [], []
    for sample in samples:
        output = redact(sample.text).text
        spans = redaction_spans(sample.text, output)
        background_text = list(sample.text)
        for planted in sample.planted:
            background_text[planted.start : planted.end] = ["\x00"] * (planted.end - planted.start)
        background = "".join(background_text)
        scrubbed = PLACEHOLDER.sub("\x00", output)
        out_grams, out_strict = grams(scrubbed, GRAM), grams(scrubbed, STRICT_GRAM)
        bg_grams, bg_strict = grams(background, GRAM), grams(background, STRICT_GRAM)
        for planted in sample.planted:
            assert sample.text[planted.start : planted.end] == planted.value, sample.name
            survived = survivor(planted, scrubbed, out_grams, bg_grams, GRAM)
            strict = survivor(planted, scrubbed, out_strict, bg_strict, STRICT_GRAM)
            kinds = tuple(kind for start, end, kind in spans if start < planted.end and end > planted.start)
            outcomes.append(Outcome(sample, planted, survived is None, strict is None, survived, output, kinds))
        over += [
            (sample, start, end, kind)
            for start, end, kind in spans
            if not any(start < p.end and end > p.start for p in sample.planted)
        ]
    return outcomes, over


def time_texts(redact, texts: list[str], rounds: int) -> tuple[list[float], list[float]]:
    redact_ms, base_ms = [], []
    order = list(range(len(texts)))
    shuffler = random.Random(0)
    clock = time.perf_counter_ns
    gc.collect()
    for _ in range(rounds):
        shuffler.shuffle(order)
        for index in order:
            text = texts[index]
            started = clock()
            redact(text)
            middle = clock()
            BASELINE.search(text.lower())
            ended = clock()
            redact_ms.append((middle - started) / 1e6)
            base_ms.append((ended - middle) / 1e6)
    return redact_ms, base_ms


def long_texts(gen: Gen, pool: list[Sample], count: int) -> list[str]:
    texts = []
    for _ in range(count):
        parts, length = [], 0
        while length < LONG_CHARS:
            text = gen.pick(pool).text
            parts.append(text)
            length += len(text) + 2
        texts.append("\n\n".join(parts)[:LONG_CHARS])
    return texts


def load_redact():
    """aihelper.core.redaction with the project root on sys.path (this file must not shadow stdlib secrets)."""
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
    sys.path.insert(0, str(ROOT))
    try:
        from aihelper.core.redaction import redact
    except Exception as error:
        if "settings" not in str(error).lower() and "django" not in str(error).lower():
            raise
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
        os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
        os.environ.setdefault("DEBUG", "0")
        import django

        django.setup()
        from aihelper.core.redaction import redact
    return redact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1729)
    parser.add_argument("--texts", type=int, default=600, help="generated texts with planted secrets (>= 500)")
    parser.add_argument("--clean", type=int, default=300, help="generated clean texts with look-alikes (>= 200)")
    parser.add_argument("--long", type=int, default=120, help="4,000-character texts for the latency target")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over every text")
    args = parser.parse_args()

    redact = load_redact()
    gen = Gen(args.seed)
    secrets_set = secret_samples(gen, args.texts)
    lookalikes = lookalike_samples(gen, args.clean)
    sources = clean_sources(lookalikes)

    # -- recall --------------------------------------------------------------------------------------
    outcomes, over_redactions = evaluate_secrets(redact, secrets_set)
    issue = [o for o in outcomes if FORMATS[o.planted.fmt]]
    extra = [o for o in outcomes if not FORMATS[o.planted.fmt]]
    recall = sum(o.caught for o in issue) / len(issue)
    strict = sum(o.caught_strict for o in issue) / len(issue)
    summary = [
        ["texts with planted secrets", len(secrets_set)],
        ["planted secrets (issue formats)", len(issue)],
        ["caught (no 8-char run survives)", sum(o.caught for o in issue)],
        ["recall", f"{recall:.3f}"],
        ["recall, strict (no 6-char run survives)", f"{strict:.3f}"],
        ["planted secrets (extra formats)", len(extra)],
        ["recall (extra formats, not in recall=)", f"{sum(o.caught for o in extra) / max(1, len(extra)):.3f}"],
        ["formats (issue + extra)", f"{sum(FORMATS.values())} + {len(FORMATS) - sum(FORMATS.values())}"],
        ["redactions outside planted secrets (info)", len(over_redactions)],
    ]
    print(f"secret redaction benchmark: seed {args.seed}, {len(secrets_set)} + "
          f"{sum(len(s) for s in sources.values())} texts")
    print_table("recall on planted secrets", ["measure", "value"], summary)

    rows = []
    for fmt, listed in FORMATS.items():
        mine = [o for o in outcomes if o.planted.fmt == fmt]
        kinds = Counter(kind for o in mine for kind in o.kinds)
        top = ", ".join(f"{kind}" for kind, _ in kinds.most_common(2)) or "-"
        caught = sum(o.caught for o in mine)
        rows.append([fmt + ("" if listed else " (extra)"), len(mine), caught, caught / max(1, len(mine)), top])
    print_table("per format", ["format", "planted", "caught", "recall", "placeholder kinds"], rows, left=(0, 4))

    rows = []
    for family in FAMILIES:
        mine = [o for o in issue if o.sample.family == family]
        texts = sum(1 for s in secrets_set if s.family == family)
        caught = sum(o.caught for o in mine)
        rows.append([family, texts, len(mine), caught, caught / max(1, len(mine))])
    print_table("per family (issue formats)", ["family", "texts", "planted", "caught", "recall"], rows)

    # -- false positives -----------------------------------------------------------------------------
    false_positives: list[tuple[str, Sample, list[tuple[int, int, str]]]] = []
    rows = []
    for source, samples in sources.items():
        flagged = 0
        for sample in samples:
            result = redact(sample.text)
            if result.kinds:
                flagged += 1
                false_positives.append((source, sample, redaction_spans(sample.text, result.text)))
        rows.append([source, len(samples), flagged, f"{flagged / max(1, len(samples)):.4f}"])
    clean_total = sum(len(samples) for samples in sources.values())
    fp_rate = len(false_positives) / clean_total
    rows.append(["all clean texts", clean_total, len(false_positives), f"{fp_rate:.4f}"])
    print_table("clean texts (a text with >= 1 redaction is a false positive)",
                ["source", "texts", "with redaction", "rate"], rows)
    by_kind: dict[str, list] = {}
    for _, sample, spans in false_positives:
        for start, end, kind in spans:
            by_kind.setdefault(kind, []).append((sample.name, sample.text[start:end]))
    rows = [[kind, len(found), len({name for name, _ in found}), excerpt(found[0][1], 0, len(found[0][1]), 0, 36)]
            for kind, found in sorted(by_kind.items(), key=lambda item: -len(item[1]))]
    print_table("false-positive redactions by placeholder kind", ["kind", "redactions", "texts", "example"], rows,
                left=(0, 3))

    # -- latency -------------------------------------------------------------------------------------
    every_text = [s.text for s in secrets_set] + [s.text for samples in sources.values() for s in samples]
    long_set = long_texts(gen, secrets_set + lookalikes, args.long)
    for text in every_text[:50] + long_set[:10]:  # warm-up (regex compilation, caches)
        redact(text)
    all_redact, all_base = time_texts(redact, every_text, args.rounds)
    long_redact, long_base = time_texts(redact, long_set, args.rounds)
    rows = []
    for name, texts, red, base in (("all texts", every_text, all_redact, all_base),
                                   (f"{LONG_CHARS:,}-char texts", long_set, long_redact, long_base)):
        mean_chars = sum(len(t) for t in texts) / len(texts)
        rows.append([name, len(texts), f"{mean_chars:.0f}", len(red), f"{percentile(red, 50):.3f}",
                     f"{percentile(red, 95):.3f}", f"{percentile(base, 50):.4f}", f"{percentile(base, 95):.4f}",
                     f"{percentile(red, 95) / percentile(base, 95):.0f}x"])
    print_table(f"latency per text, ms ({args.rounds} rounds; baseline: str.lower() + one re.search)",
                ["set", "texts", "mean chars", "samples", "redact p50", "redact p95", "base p50", "base p95",
                 "p95 ratio"], rows)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    p95_long = percentile(long_redact, 95)

    # -- details for tuning --------------------------------------------------------------------------
    misses = [o for o in outcomes if not o.caught]
    print(f"\nmissed secrets ({len(misses)}; (extra) = not in recall=)")
    for o in sorted(misses, key=lambda o: (o.planted.fmt, o.sample.name)):
        p = o.planted
        where = "whole value" if o.survived == p.value else f"part {o.survived!r}"
        out_at = o.output.find(o.survived) if o.survived else -1
        tag = "" if FORMATS[p.fmt] else " (extra)"
        print(f"  [{p.fmt}{tag}] {o.sample.name} {o.sample.family}: {excerpt(o.sample.text, p.start, p.end)}")
        print(f"      survived: {where}; output: {excerpt(o.output, out_at, out_at + len(o.survived or ''))}")
    print(f"\nredactions outside the planted secrets of secret texts ({len(over_redactions)}; info, not scored)")
    for sample, start, end, kind in over_redactions:
        print(f"  {sample.name} ({sample.family}) -> {kind}: {excerpt(sample.text, start, end)}")
    print(f"\nfalse positives ({len(false_positives)} clean texts)")
    for source, sample, spans in false_positives:
        for start, end, kind in spans:
            print(f"  [{source}] {sample.name} ({sample.family}) -> {kind}: {excerpt(sample.text, start, end)}")

    # -- targets -------------------------------------------------------------------------------------
    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    print("\ntargets")
    print(f"  recall >= {TARGET_RECALL}: {recall:.3f} {verdict(recall >= TARGET_RECALL)}")
    print(f"  false positives <= {TARGET_FP_RATE:.1%} of clean texts: {fp_rate:.2%} "
          f"{verdict(fp_rate <= TARGET_FP_RATE)}")
    print(f"  p95 <= {TARGET_P95_MS_4000:.0f} ms at {LONG_CHARS:,} characters: {p95_long:.3f} ms "
          f"{verdict(p95_long <= TARGET_P95_MS_4000)}")
    print(f"recall={recall:.3f}")
    print(f"false_positive_rate={fp_rate:.4f}")
    print(f"p95_ms_4000={p95_long:.3f}")


if __name__ == "__main__":
    main()

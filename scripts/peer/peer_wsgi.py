"""WSGI entry point for the reference peer, scim2-server, under gunicorn.

Builds the same application as the `scim2-server` CLI with its defaults (RFC 7643 schemas,
User and Group, the default service provider config, in-memory storage, one static bearer
token) but lets a production WSGI server serve it: the CLI's wsgiref server speaks HTTP/1.0
(no keep-alive) with a listen backlog of 5, which drops connections under concurrency.

The storage lives in the process, so run ONE worker with threads:
    PEER_TOKEN=... gunicorn -w 1 -k gthread --threads 8 -b 127.0.0.1:PORT \
        --chdir scripts/peer peer_wsgi:app
"""

import os
import secrets

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

config = load_default_service_provider_config()
config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
provider = ScimProvider.from_discovery(
    load_default_schemas().values(), load_default_resource_types().values(), config=config
)
service = ScimService(provider, secret=secrets.token_urlsafe(32))
_app = BearerTokenApplication(
    InMemoryStorage(), provider, service=service, bearer_tokens=[os.environ["PEER_TOKEN"]]
)


def app(environ, start_response):
    # The application mounts at the root and serves /v2/... like the CLI.
    return _app(environ, start_response)

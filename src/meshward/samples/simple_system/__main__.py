"""`python -m meshward.samples.simple_system user-service|location-service|credentials --host H
--port N`.

Run by the runner from examples/simple-system/*.yaml and by tests. Logs one line per request
to stdout. user-service needs MESHWARD_SVC_CORE_DATABASE_6379 and
MESHWARD_SVC_GEO_LOCATION_SERVICE_8081 (see `discovery`); without them it exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from meshward.samples import server
from meshward.samples.simple_system import credentials, discovery, location_service, user_service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshward.samples.simple_system")
    parser.add_argument("service", choices=("user-service", "location-service", "credentials"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args(argv)
    if options.service == "credentials":
        credentials.run(options.host, options.port)
        return 0
    if options.service == "location-service":
        server.run(
            location_service.respond,
            options.host,
            options.port,
            log=server.stdout_log,
            banner="location-service",
        )
        return 0
    try:
        endpoints = user_service.Endpoints.from_environ(os.environ)
    except (discovery.MissingServiceError, ValueError) as error:
        print(f"user-service: {error}", file=sys.stderr)
        return 2
    host, port = endpoints.database
    # One quick retry, not redis-py's default multi-second backoff: a request should fail fast
    # (502 naming the database hop) when the database or its sidecar path is down.
    client = redis.Redis(
        host=host,
        port=port,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
    )
    threading.Thread(
        target=user_service.seed_forever, args=(client, server.stdout_log), daemon=True
    ).start()
    app = user_service.UserService(endpoints, client)
    server.run(
        app.respond,
        options.host,
        options.port,
        offload=True,
        log=server.stdout_log,
        banner="user-service",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

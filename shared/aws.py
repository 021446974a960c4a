"""boto3 clients configured the standard AWS way, with bounded time per call.

Only the standard configuration: credentials from boto3's chain (environment, shared files, the ECS
container role, the EC2 instance role), the region from `AWS_REGION` or else what botocore finds
(`AWS_DEFAULT_REGION`, the config file), the endpoint from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`,
which botocore itself honours. Nothing here logs a client, its config or a request: botocore's own debug
log prints request headers (the access key id, a session token), so it is kept at WARNING.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
from botocore.config import Config

from shared import defaults

CLIENT_CONFIG = Config(
    connect_timeout=defaults.AWS_CONNECT_TIMEOUT_SECONDS,
    read_timeout=defaults.AWS_READ_TIMEOUT_SECONDS,
    retries={"mode": "adaptive", "total_max_attempts": defaults.AWS_ATTEMPTS},
)


def client(service: str) -> Any:
    """A boto3 client for `service` ("ecs", "elbv2"). Raises botocore's NoRegionError when no region is
    configured."""
    for name in ("botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    return session.client(service, config=CLIENT_CONFIG)

"""AWS Application Load Balancers (SPEC section 5): finding the ALB in front of a service, its health, whether it
still exists (`resolver`, through the fleet's cache in Redis, `cache`, and AWS, `boto`), and the ALB's Eureka
record as a thing of its own (`record`), joined and left by containers (`membership`, with `lookups` that never
hold a job up) and renewed by the heartbeater. `alb_resolver` builds the resolver the workers call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from shared import defaults

if TYPE_CHECKING:
    from registrar.albs.resolver import AlbResolver


def alb_resolver(client: redis.Redis, *, check_interval: float = defaults.ALB_RENEWAL_INTERVAL_SECONDS,
                 budget_seconds: float = defaults.ALB_LOOKUP_BUDGET_SECONDS) -> AlbResolver:
    """AWS through the fleet-wide cache in `client` (a Redis client that decodes responses); health and
    existence are asked of AWS at most once per `check_interval` seconds, and one lookup asks AWS for at
    most about `budget_seconds`."""
    # Imported here: boto3 costs a worker 8 MB, which reading this process's AWS counters
    # (registrar.albs.stats, for /metrics) should not.
    from registrar.albs.boto import Boto3Directory
    from registrar.albs.cache import CachedDirectory
    from registrar.albs.resolver import AlbResolver

    return AlbResolver(CachedDirectory(client, Boto3Directory(), check_interval=check_interval),
                       budget_seconds=budget_seconds)

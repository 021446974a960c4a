"""`registrator-status` (`python -m status`): every instance the system knows, what its container wants, what
Eureka holds, who vouches for it, and why anything differs. Reads only: nothing in Redis or Eureka changes.

Configured like the components (REDIS_URL, EUREKA_URL; flags win): without a Eureka URL, Eureka is not
asked. Exit status 0 when it could read Redis (whatever the rows say), 1 when it could not, 2 on bad options.
"""

from __future__ import annotations

import sys
from typing import Sequence

import redis

from shared import config
from shared.config import without_passwords
from shared.connection import connect
from shared.eureka import EurekaClient
from shared.store import Store
from status import report, snapshot


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_status(argv)
    eureka = None
    if settings.eureka_url:
        # One attempt per instance: a status view should answer in seconds, not retry like a registrar.
        eureka = EurekaClient(settings.eureka_url, settings.eureka_timeout, attempts=1,
                              ca_bundle=settings.eureka_ca_bundle)
    try:
        read = snapshot.read(Store(connect(settings)), eureka)
    except redis.RedisError as err:
        sys.stderr.write(f"registrator-status: error: cannot read Redis: "
                         f"{without_passwords(f'{type(err).__name__}: {err}')}\n")
        raise SystemExit(1) from None
    found = report.rows(read)
    trouble = read.eureka.trouble if read.eureka else None
    sys.stdout.write(report.as_json(found, trouble) if settings.json else report.table(found, trouble))


if __name__ == "__main__":
    main()

"""This host's IP: what its name resolves to, or what a lookup URL answers (-ip-lookup-source, for hosts
whose name does not resolve to the IP clients should use: a laptop on a VPN, a NATed machine; the
answer's body is the IP).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0


def resolve(hostname: str) -> str | None:
    """The IP `hostname` resolves to (used for ports bound to all interfaces), None (logged) if none."""
    try:
        return socket.gethostbyname(hostname)
    except OSError as err:
        log.error("hostname %r does not resolve (%s): ports bound to all interfaces need -ip", hostname, err)
        return None


class IpLookupError(Exception):
    """The lookup URL could not be reached or did not answer an IP (the message says which)."""


def parse_answer(body: bytes) -> str:
    """The IP in a lookup answer: surrounding whitespace is ignored, anything else is an error."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise IpLookupError("the answer is not UTF-8 text") from None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise IpLookupError(f"the answer {text[:60]!r} is not an IP address") from None


def look_up(url: str) -> str:
    """GET `url` once and return the IP it answers. Raises IpLookupError."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            if response.status != 200:
                raise IpLookupError(f"GET {url}: HTTP {response.status}")
            return parse_answer(response.read())
    except urllib.error.HTTPError as err:
        raise IpLookupError(f"GET {url}: HTTP {err.code}") from None
    except (OSError, ValueError) as err:
        raise IpLookupError(f"GET {url}: {type(getattr(err, 'reason', err)).__name__}") from None


def look_up_with_retries(url: str, attempts: int, interval: float) -> str | None:
    """The looked-up IP, trying up to `attempts` times `interval` seconds apart; None if every attempt failed."""
    for attempt in range(1, attempts + 1):
        try:
            ip = look_up(url)
        except IpLookupError as err:
            log.warning("IP lookup attempt %d of %d failed: %s", attempt, attempts, err)
            if attempt < attempts:
                time.sleep(interval)
            continue
        log.info("IP lookup: this host's IP is %s (from %s)", ip, url)
        return ip
    return None

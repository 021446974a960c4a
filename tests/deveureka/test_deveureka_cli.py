"""The command line: options, invalid values, start-up line, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from deveureka.__main__ import Settings, parse_settings


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deveureka", *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DEVEUREKA_")},
            **(env or {}),
        },
    )


@pytest.mark.parametrize(
    "args,named",
    [
        (["--port", "http"], "--port"),
        (["--port", "70000"], "--port"),
        (["--eviction-interval", "0"], "--eviction-interval"),
        (["--eviction-interval", "nan"], "--eviction-interval"),
        (["--response-cache-seconds", "-1"], "--response-cache-seconds"),
        (["--lease-expiry", "forever"], "--lease-expiry"),
        (["--strict", "yes"], "yes"),
        (["--log-level", "LOUD"], "--log-level"),
        (["--host", ""], "--host"),
        (["--bogus"], "--bogus"),
    ],
)
def test_invalid_flag_exits_2_with_one_line_naming_it(args, named):
    result = _run(*args)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert result.stdout == ""


def test_invalid_environment_value_names_the_variable():
    result = _run(env={"DEVEUREKA_EVICTION_INTERVAL": "-5"})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "deveureka: DEVEUREKA_EVICTION_INTERVAL (--eviction-interval): "
        "invalid value '-5': must be a number of seconds > 0"
    ]


def test_settings_defaults_environment_and_flags():
    assert parse_settings([], environ={}) == Settings(
        "127.0.0.1", 8761, 60.0, 30.0, "netflix", False, False, "INFO", "", "", None
    )
    environ = {
        "DEVEUREKA_PORT": "9000",
        "DEVEUREKA_LOG_LEVEL": "debug",
        "DEVEUREKA_HOST": "0.0.0.0",
        "DEVEUREKA_SELF_PRESERVATION": "TRUE",
        "DEVEUREKA_LEASE_EXPIRY": "duration",
    }
    settings = parse_settings(
        ["--port", "9100", "--response-cache-seconds", "0", "--strict"], environ=environ
    )
    assert settings == Settings(
        "0.0.0.0", 9100, 60.0, 0.0, "duration", True, True, "DEBUG", "", "", None
    )


def test_invalid_switch_environment_value_names_the_variable():
    result = _run(env={"DEVEUREKA_STRICT": "maybe"})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "deveureka: DEVEUREKA_STRICT (--strict): invalid value 'maybe': must be true or false"
    ]


def test_help_lists_every_option():
    result = _run("--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--eviction-interval",
        "--response-cache-seconds",
        "--lease-expiry",
        "--self-preservation",
        "--strict",
        "--log-level",
    ):
        assert flag in result.stdout


def test_prints_its_url_and_stops_cleanly_on_sigterm(launch):
    server = launch()
    assert f"serving {server.base_url} " in server.log()

    assert server.stop(signal.SIGTERM) == 0


def test_stops_cleanly_on_sigint(launch):
    server = launch("--log-level", "DEBUG")
    assert server.stop(signal.SIGINT) == 0

"""The command line: options, invalid values, start-up line, signals, response cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

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
    assert parse_settings([], environ={}) == Settings("127.0.0.1", 8761, 60.0, 0.0, "INFO", "", "", None)
    environ = {
        "DEVEUREKA_PORT": "9000",
        "DEVEUREKA_LOG_LEVEL": "debug",
        "DEVEUREKA_HOST": "0.0.0.0",
    }
    settings = parse_settings(["--port", "9100", "--response-cache-seconds", "30"], environ=environ)
    assert settings == Settings("0.0.0.0", 9100, 60.0, 30.0, "DEBUG", "", "", None)


def test_help_lists_every_option():
    result = _run("--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--eviction-interval",
        "--response-cache-seconds",
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


def test_responses_are_fresh_without_cache(launch):
    server = launch()
    assert server.get_json("/apps")["applications"]["application"] == []
    assert server.register("WEB", server.doc("WEB")).status_code == 204

    assert [a["name"] for a in server.get_json("/apps")["applications"]["application"]] == ["WEB"]


def test_response_cache_lags_registry_wide_reads(launch):
    server = launch("--response-cache-seconds", "1")
    assert server.register("WEB", server.doc("WEB", instance_port=1)).status_code == 204
    # /apps is cached last, so once it shows the change the other entries have expired too.
    assert server.request("GET", "/apps/API").status_code == 404
    assert len(server.get_json("/apps/WEB")["application"]["instance"]) == 1
    assert len(server.get_json("/apps")["applications"]["application"]) == 1

    changed = time.monotonic()
    assert server.register("WEB", server.doc("WEB", instance_port=2)).status_code == 204
    assert server.register("API", server.doc("API")).status_code == 204

    # Single-instance reads are never cached; the others still show the old registry.
    assert server.instance("WEB", "127.0.0.1_2")["instanceId"] == "127.0.0.1_2"
    assert len(server.get_json("/apps/WEB")["application"]["instance"]) == 1
    assert len(server.get_json("/apps")["applications"]["application"]) == 1
    assert server.request("GET", "/apps/API").status_code == 404

    deadline = changed + 5
    while len(server.get_json("/apps")["applications"]["application"]) < 2:
        assert time.monotonic() < deadline, "cache never refreshed"
        time.sleep(0.05)
    assert time.monotonic() - changed >= 0.5
    assert len(server.get_json("/apps/WEB")["application"]["instance"]) == 2
    assert server.request("GET", "/apps/API").status_code == 200

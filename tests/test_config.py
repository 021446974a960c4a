"""Configuration: flags, environment variables, and one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared import config
from tests.support import REPO, configuration_error


def test_defaults_and_environment() -> None:
    settings = config.load_watcher([], {"REGISTRATOR_TTL": "20", "REGISTRATOR_INTERNAL": "true",
                                        "REGISTRATOR_HOSTNAME": "host-a"})
    assert settings.ttl == 20
    assert settings.ttl_refresh == 10
    assert settings.internal is True
    assert settings.hostname == "host-a"
    assert settings.deregister == "always"


def test_flag_wins_over_environment_with_one_or_two_dashes() -> None:
    environ = {"REGISTRATOR_TTL": "20"}
    assert config.load_watcher(["-ttl", "40"], environ).ttl == 40
    assert config.load_watcher(["--ttl=50"], environ).ttl == 50
    assert config.load_watcher(["-internal"], {}).internal is True


def test_metrics_ports_differ_by_component_and_0_turns_them_off() -> None:
    eureka = {"EUREKA_URL": "http://e/eureka"}
    assert config.load_watcher([], {}).metrics_port == 9101
    assert config.load_registrar([], eureka).metrics_port == 9102
    assert config.load_heartbeater([], eureka).metrics_port == 9103
    assert config.load_registrar(["-metrics-port", "0"], eureka).metrics_port == 0
    settings = config.load_watcher([], {"METRICS_PORT": "9200", "METRICS_ADDRESS": "127.0.0.1", "LOG_FORMAT": "json"})
    assert (settings.metrics_port, settings.metrics_address, settings.log_format) == (9200, "127.0.0.1", "json")


def test_the_status_view_asks_eureka_only_when_given_one() -> None:
    assert config.load_status([], {}).eureka_url is None
    settings = config.load_status(["--json"], {"EUREKA_URL": "http://e/eureka"})
    assert settings.json is True and settings.eureka_url == ("http://e/eureka",)


def test_several_eureka_urls() -> None:
    settings = config.load_registrar([], {"EUREKA_URL": "http://a:8761/eureka/, https://u:p@b/eureka/v2"})
    assert settings.eureka_url == ("http://a:8761/eureka", "https://u:p@b/eureka/v2")


@pytest.mark.parametrize(("loader", "argv", "environ", "culprit"), [
    (config.load_watcher, ["-ttl", "abc"], {}, "-ttl"),
    (config.load_watcher, [], {"REGISTRATOR_TTL": "0"}, "REGISTRATOR_TTL"),
    (config.load_watcher, ["-ttl", "5", "-ttl-refresh", "5"], {}, "-ttl"),
    (config.load_watcher, ["-deregister", "never"], {}, "-deregister"),
    (config.load_watcher, [], {"DOCKER_HOST": "ssh://user@host"}, "DOCKER_HOST"),
    (config.load_watcher, ["-docker-host", "tcp://"], {}, "-docker-host"),
    (config.load_watcher, ["-ip", "10.0.0.300"], {}, "-ip"),
    (config.load_watcher, [], {"REGISTRATOR_INTERNAL": "maybe"}, "REGISTRATOR_INTERNAL"),
    (config.load_watcher, ["-no-such-flag"], {}, "-no-such-flag"),
    (config.load_watcher, [], {"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    (config.load_registrar, [], {}, "-eureka-url"),
    (config.load_registrar, [], {"EUREKA_URL": "eureka:8761"}, "EUREKA_URL"),
    (config.load_heartbeater, ["-tick", "0"], {"EUREKA_URL": "http://e/eureka"}, "-tick"),
    (config.load_watcher, ["-metrics-port", "65536"], {}, "-metrics-port"),
    (config.load_watcher, [], {"METRICS_ADDRESS": "everywhere"}, "METRICS_ADDRESS"),
    (config.load_watcher, [], {"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    (config.load_status, ["-eureka-url", "eureka:8761"], {}, "-eureka-url"),
])
def test_invalid_configuration_is_one_line_naming_the_option_and_exit_2(
        loader, argv, environ, culprit, capsys: pytest.CaptureFixture[str]) -> None:
    assert culprit in configuration_error(loader, argv, environ, capsys)


@pytest.mark.parametrize("component", ["watcher", "registrar", "heartbeater"])
def test_component_processes_refuse_bad_flags_before_starting(component: str) -> None:
    result = subprocess.run([sys.executable, "-m", component, "-retry-interval", "soon"], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "EUREKA_URL": "http://127.0.0.1:1/eureka"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{component}: error: invalid value 'soon' for -retry-interval: expected an integer"]


@pytest.mark.parametrize(("loader", "environ", "shown"), [
    (config.load_registrar, {"EUREKA_URL": "https://registrar:s3cret@eureka/v2,ftp://x"},
     "https://registrar:***@eureka/v2,ftp://x"),
    (config.load_registrar, {"EUREKA_URL": "http://a/eureka, eureka-b:s3cret@host"}, None),
    (config.load_watcher, {"REDIS_URL": "http://:s3cret@redis:6379/0"}, "http://:***@redis:6379/0"),
])
def test_configuration_errors_never_echo_a_password(loader, environ, shown, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        loader([], environ)
    error = capsys.readouterr().err
    assert "s3cret" not in error
    if shown:
        assert repr(shown) in error


def test_min_renewal_interval_and_host_forget_margin() -> None:
    settings = config.load_registrar(["-min-renewal-interval", "1"], {"EUREKA_URL": "http://e/eureka"})
    assert settings.min_renewal_interval == 1
    assert settings.host_forget_margin == 120


def test_a_timeout_too_long_for_a_job_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.load_registrar(["-eureka-timeout", "30"], {"EUREKA_URL": "http://a/e,http://b/e,http://c/e"})
    assert "-eureka-timeout (30.0) is too long for 3 Eureka servers" in capsys.readouterr().err

"""The watcher's registrator flags: names, environment variables, defaults, one-line errors with exit
status 2; and the IP lookup's reading of an answer."""

from __future__ import annotations

import pytest

from shared import config
from tests.support import configuration_error
from watcher.hostip import IpLookupError, parse_answer


def test_defaults() -> None:
    settings = config.load_watcher([], {})
    assert (settings.require_label, settings.use_ip_from_label, settings.name_from_image, settings.cleanup) == (
        False, None, False, False)
    assert (settings.ip_lookup_source, settings.ip_lookup_retries, settings.ip_lookup_interval,
            settings.exit_on_ip_lookup_failure) == (None, 1, 10, False)


def test_flags() -> None:
    settings = config.load_watcher(["-require-label", "-useIpFromLabel", "com.example.ip", "-name-from-image",
                                    "-ip-lookup-source", "http://127.0.0.1:8000/ip/", "-ip-lookup-retries", "3",
                                    "-ip-lookup-interval", "5", "-exit-on-ip-lookup-failure", "--cleanup"], {})
    assert (settings.require_label, settings.use_ip_from_label, settings.name_from_image, settings.cleanup) == (
        True, "com.example.ip", True, True)
    assert (settings.ip_lookup_source, settings.ip_lookup_retries, settings.ip_lookup_interval,
            settings.exit_on_ip_lookup_failure) == ("http://127.0.0.1:8000/ip/", 3, 5, True)


@pytest.mark.parametrize("flag", ["-useIpFromLabel", "--useIpFromLabel", "-use-ip-from-label", "--use-ip-from-label"])
def test_use_ip_from_label_keeps_registrators_spelling_and_accepts_the_usual_one(flag: str) -> None:
    assert config.load_watcher([flag, "ip"], {}).use_ip_from_label == "ip"


def test_environment() -> None:
    settings = config.load_watcher([], {
        "REGISTRATOR_REQUIRE_LABEL": "true", "REGISTRATOR_USE_IP_FROM_LABEL": "ip", "REGISTRATOR_NAME_FROM_IMAGE": "1",
        "REGISTRATOR_IP_LOOKUP_SOURCE": "https://ip.example/", "REGISTRATOR_IP_LOOKUP_RETRIES": "4",
        "REGISTRATOR_IP_LOOKUP_INTERVAL": "30", "REGISTRATOR_EXIT_ON_IP_LOOKUP_FAILURE": "yes",
        "REGISTRATOR_CLEANUP": "on"})
    assert (settings.require_label, settings.use_ip_from_label, settings.name_from_image, settings.cleanup,
            settings.ip_lookup_source, settings.ip_lookup_retries, settings.ip_lookup_interval,
            settings.exit_on_ip_lookup_failure) == (True, "ip", True, True, "https://ip.example/", 4, 30, True)


@pytest.mark.parametrize(("argv", "environ", "culprit"), [
    (["-ip-lookup-retries", "0"], {}, "-ip-lookup-retries"),
    (["-ip-lookup-interval", "soon"], {}, "-ip-lookup-interval"),
    (["-ip-lookup-source", "ip.example"], {}, "-ip-lookup-source"),
    ([], {"REGISTRATOR_CLEANUP": "maybe"}, "REGISTRATOR_CLEANUP"),
    ([], {"REGISTRATOR_REQUIRE_LABEL": "sure"}, "REGISTRATOR_REQUIRE_LABEL"),
    (["-tags", "bad-\udcff"], {}, "-tags"),
    ([], {"REGISTRATOR_USE_IP_FROM_LABEL": "\udcfe"}, "REGISTRATOR_USE_IP_FROM_LABEL"),
    (["-cleanup=yes"], {}, "-cleanup"),
])
def test_invalid_values_are_one_line_naming_the_option_and_exit_2(
        argv: list[str], environ: dict[str, str], culprit: str, capsys: pytest.CaptureFixture[str]) -> None:
    error = configuration_error(config.load_watcher, argv, environ, capsys)
    assert culprit in error
    error.encode("utf-8")


@pytest.mark.parametrize(("body", "ip"), [
    (b"10.1.2.3", "10.1.2.3"),
    (b" 10.1.2.3\r\n", "10.1.2.3"),
    (b"2001:db8::1\n", "2001:db8::1"),
])
def test_lookup_answer(body: bytes, ip: str) -> None:
    assert parse_answer(body) == ip


@pytest.mark.parametrize("body", [b"", b"10.1.2", b"<html>10.1.2.3</html>", b"10.1.2.3 10.1.2.4", b"\xff\xfe",
                                  b"1" * 10_000])
def test_unusable_lookup_answer(body: bytes) -> None:
    with pytest.raises(IpLookupError):
        parse_answer(body)

"""RFC 9309 decisions from fetch outcomes, origins, and the policy's token and delay rules (no network)."""

from __future__ import annotations

import threading
import time

import pytest

from curation.robots import RobotsFile, RobotsPolicy, RobotsState, origin_of


@pytest.mark.parametrize(
    ("status", "code", "state"),
    [
        ("ok", 200, RobotsState.RULES),
        ("http_error", 404, RobotsState.ALLOW_ALL),
        ("http_error", 403, RobotsState.ALLOW_ALL),  # 4xx: unavailable (RFC 9309 §2.3.1.3)
        ("too_many_redirects", 301, RobotsState.ALLOW_ALL),
        ("http_5xx", 503, RobotsState.DISALLOW_ALL),  # unreachable (§2.3.1.4)
        ("rate_limited", 429, RobotsState.DISALLOW_ALL),
        ("timeout", 0, RobotsState.DISALLOW_ALL),
        ("connection_error", 0, RobotsState.DISALLOW_ALL),
        ("dns_error", 0, RobotsState.DISALLOW_ALL),
        ("forbidden_address", 0, RobotsState.GUARDED),  # the image is refused for that reason itself
        ("forbidden_port", 0, RobotsState.GUARDED),
        ("too_large", 200, RobotsState.DISALLOW_ALL),
    ],
)
def test_fetch_outcome_to_state(status, code, state):
    assert RobotsFile.from_fetch("http://h", status, code, b"User-agent: *\n", "x").state == state


def test_only_the_first_500_kib_are_parsed():
    body = b"User-agent: *\nDisallow: /a\n" + b"#" * (600 * 1024) + b"\nDisallow: /b\n"
    f = RobotsFile.from_fetch("http://h", "ok", 200, body, "")
    policy = RobotsPolicy(["clipforge"], [f])
    assert policy.check("http://h/a/1.png") is not None and policy.check("http://h/b/1.png") is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://Example.COM/a.png", "http://example.com"),
        ("https://example.com:443/a.png", "https://example.com"),
        ("http://example.com:8080/a", "http://example.com:8080"),
        ("ftp://example.com/a", None),
        ("not a url", None),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


def test_tokens_delays_and_one_fetch_per_origin():
    rules = "User-agent: *\nCrawl-delay: 1\n\nUser-agent: img2dataset\nCrawl-delay: 4\nDisallow: /x\n"
    calls: list[str] = []

    def fetch(origin: str) -> RobotsFile:
        calls.append(origin)
        time.sleep(0.05)  # threads pile up on the same origin meanwhile
        return RobotsFile(origin, RobotsState.RULES, rules)

    policy = RobotsPolicy(["clipforge", "img2dataset"], fetch_robots=fetch)
    threads = [threading.Thread(target=policy.check, args=(f"http://h/{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["http://h"]
    assert policy.crawl_delay("http://h/a") == 4.0  # the longest among our tokens
    assert "for img2dataset" in policy.check("http://h/x/1.png")
    assert policy.check("http://h/y/1.png") is None
    assert RobotsPolicy(["clipforge"], fetch_robots=fetch).check("http://h/x/1.png") is None

"""Fixtures of the OpenAI-client tests: the servers tests/openai/run.sh started, read from the
environment, and small readers of their HTTP pages. Run through run.sh, never alone."""

import json
import os
import time
import urllib.error
import urllib.request

import openai
import pytest


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these tests through tests/openai/run.sh", 2)
    return value


@pytest.fixture(scope="session")
def model():
    return _env("GIMBAL_OPENAI_MODEL")


@pytest.fixture(scope="session")
def router_url():
    url = _env("GIMBAL_OPENAI_ROUTER")
    wait_healthy(url)
    return url


@pytest.fixture(scope="session")
def rank_urls():
    return _env("GIMBAL_OPENAI_RANKS").split()


@pytest.fixture(scope="session")
def admin_token():
    return _env("GIMBAL_OPENAI_ADMIN_TOKEN")


@pytest.fixture(scope="session")
def client(router_url):
    # No retries: each test sees the router's first answer, as it was sent.
    return openai.OpenAI(base_url=router_url + "/v1", api_key="unused", max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def victim():
    """The router in front of the one-rank engine the failure test kills, and that engine's pid."""
    url = _env("GIMBAL_OPENAI_VICTIM_ROUTER")
    wait_healthy(url)
    return url, int(_env("GIMBAL_OPENAI_VICTIM_PID"))


def wait_healthy(url, timeout_s=20):
    """Waits (bounded) until the router's /health is 200: some engine is admitted."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url}/health did not answer 200 within {timeout_s} s")
        time.sleep(0.1)


def get(url, token=None):
    """GET url; returns (status, body text)."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get_json(url, token=None):
    status, body = get(url, token)
    assert status == 200, f"GET {url}: {status} {body}"
    return json.loads(body)


def _labels(text):
    """'a="1",b="x"' -> {"a": "1", "b": "x"} (label values here hold no quotes or commas)."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out


def metrics(url):
    """The samples of url's /metrics page: a list of (name, labels, value)."""
    status, body = get(url + "/metrics")
    assert status == 200, f"GET {url}/metrics: {status}"
    samples = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, brace, rest = head.partition("{")
        samples.append((name, _labels(rest.rstrip("}")) if brace else {}, float(value)))
    return samples


def metric_sum(url, name):
    return sum(v for n, _, v in metrics(url) if n == name)

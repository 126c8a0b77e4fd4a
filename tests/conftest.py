"""Shared fixtures for the whole test suite.

``s3_server``: a real S3 API (moto's server mode) on 127.0.0.1 with a free port, for the
session. Tests talk to it with boto3 exactly as production code talks to AWS. The AWS
credentials/region are dummy values set for the session only.
``s3_bucket``: a fresh, uniquely named bucket on that server for one test; yields its name.
"""
from __future__ import annotations

import os
import socket
import uuid

import pytest

_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """Start moto's S3 server; yield its endpoint URL (``http://127.0.0.1:<port>``)."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in _DUMMY_AWS_ENV}
    os.environ.update(_DUMMY_AWS_ENV)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A new bucket on the moto server; also points ``AWS_ENDPOINT_URL_S3`` at the server for the test."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    for k, v in _DUMMY_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    yield name

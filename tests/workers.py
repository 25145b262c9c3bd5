"""A real Celery worker for the few end-to-end tests (Celery's guide: eager mode is not a test tool)."""

import time
import uuid
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app


@pytest.fixture
def celery_worker(broker_url):
    """A worker thread on a queue of its own, so parallel test processes sharing one Redis
    never take each other's tasks."""
    with running_worker(broker_url) as worker_app:
        yield worker_app


@contextmanager
def running_worker(broker_url: str):
    """A worker thread on ``broker_url`` and a queue of its own (see :func:`celery_worker`)."""
    previous = app.conf.broker_url, app.conf.task_default_queue
    _reset_connections()
    app.conf.broker_url = broker_url
    app.conf.task_default_queue = f"tests-{uuid.uuid4().hex}"
    app.amqp.queues = app.amqp.Queues(())  # rebuilt from task_default_queue
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield app
    finally:
        app.conf.broker_url, app.conf.task_default_queue = previous
        app.amqp.queues = app.amqp.Queues(())
        _reset_connections()


def _reset_connections() -> None:
    """Forget pooled connections and producers, which stay bound to the broker they were made for."""
    app._pool = None
    app.amqp._producer_pool = None


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False

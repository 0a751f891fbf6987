"""The scheduler binds through a copy of its client that sends each request once (no retry of a bind that an
overloaded API server answers late; a failed bind goes back to the scheduling queue)."""

from master.scheduler.scheduler import Scheduler, single_attempt


class Client:
    def __init__(self):
        self.nc = object()
        self.timeout = 10.0
        self.retries = 3


def test_binds_are_sent_once_on_the_same_connection():
    client = Client()
    s = Scheduler(client)
    binder = s.framework.binders[0]
    assert binder.client is s.bind_client and binder.client is not client
    assert binder.client.retries == 0 and binder.client.nc is client.nc and binder.client.timeout == 10.0
    assert client.retries == 3  # informers, events and leader election keep their retries


def test_a_client_without_retries_is_used_as_it_is():
    fake = object()
    assert single_attempt(fake) is fake

"""An S3 protocol server for tests: moto's server application on the loopback address, served from a
thread of the test process (moto's "server mode"), that can hold one upload half-received.

A test points writers at it through the environment (:meth:`S3Server.env`: ``AWS_ENDPOINT_URL`` and
test credentials), in this process or in the subprocesses it starts and kills. :meth:`S3Server.stall`
makes the server read the first bytes of one chosen ``PUT`` and then wait, never storing it: the
writer is then mid-upload, which is when the test kills it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request would drown a failure's report
        pass


class S3Server:
    """Start with ``with S3Server() as s3:``; ``s3.url`` is its endpoint."""

    def __init__(self) -> None:
        self._app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._rule: Callable[[str, str], bool] | None = None
        self.stalled = threading.Event()
        self._release = threading.Event()
        self.puts: list[str] = []

    def __enter__(self) -> S3Server:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._thread.join(10)

    def env(self) -> dict[str, str]:
        """Environment variables that point boto-based clients (s3fs) at this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    @contextmanager
    def stall(self, rule: Callable[[str, str], bool]) -> Iterator[threading.Event]:
        """Hold the first request for which ``rule(method, path)`` is true half-received until the block ends.

        Yields an event that is set once that request has arrived (its first bytes read). The held
        request is then answered with an error and its object never stored.
        """
        self.stalled.clear()
        self._release.clear()
        self._rule = rule
        try:
            yield self.stalled
        finally:
            self._rule = None
            self._release.set()

    def _wsgi(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "PUT":
            self.puts.append(path)
        rule = self._rule
        if rule is not None and rule(method, path):
            self._rule = None
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"].read(min(length, 16))  # the upload has begun
            self.stalled.set()
            self._release.wait(60)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"upload never completed"]
        return self._app(environ, start_response)


@contextmanager
def s3_environment(server: S3Server) -> Iterator[None]:
    """Point this process at ``server`` (environment variables; fresh s3fs clients)."""
    import s3fs

    old = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3fs.S3FileSystem.clear_instance_cache()

"""moto's S3 server on 127.0.0.1:PORT, with archival restores that take time.

    python scripts/moto-server.py PORT [--restore-delay SECONDS]

Run with the python of scripts/install-moto.sh's venv. moto completes a
RestoreObject at once, so a client that waits for a restore would never be
seen waiting. For --restore-delay seconds after moto accepts the first
restore of a key, this middleware answers HEAD of the key with
`x-amz-restore: ongoing-request="true"`, GET with S3's 403
InvalidObjectState, and another restore with S3's 409
RestoreAlreadyInProgress; then moto answers as usual.

It also counts RestoreObject requests per "bucket/key", served as JSON at
GET /_cairn/restores (DELETE resets them), so tests can check that exactly
the objects needed were requested. Only path-style requests are understood.
"""

import argparse
import json
import threading
import time
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>{code}</Code><Message>{message}</Message><RequestId>cairn-moto</RequestId></Error>"""


class SlowRestores:
    def __init__(self, app, delay):
        self.app = app
        self.delay = delay
        self.lock = threading.Lock()  # the server is threaded
        self.counts = {}  # "bucket/key" -> RestoreObject requests
        self.ready_at = {}  # "bucket/key" -> monotonic time its restore ends

    def __call__(self, environ, start_response):
        # WSGI hands the decoded path as latin-1; keys are UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        method = environ["REQUEST_METHOD"]
        if path == "/_cairn/restores":
            return self.restores(method, start_response)
        bucket, _, key = path.lstrip("/").partition("/")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if not key:
            return self.app(environ, start_response)
        name = f"{bucket}/{key}"
        with self.lock:
            ongoing = time.monotonic() < self.ready_at.get(name, 0)
            if method == "POST" and "restore" in query:
                self.counts[name] = self.counts.get(name, 0) + 1
        if method == "POST" and "restore" in query:
            if ongoing:
                return error(start_response, "409 Conflict", "RestoreAlreadyInProgress",
                             "Object restore is already in progress")
            return self.app(environ, self.restore_started(name, start_response))
        # Reads of the object itself, not of a subresource (?tagging, ?retention, ...).
        plain_read = set(query) <= {"versionId", "partNumber"}
        if ongoing and plain_read and method == "GET":
            return error(start_response, "403 Forbidden", "InvalidObjectState",
                         "The operation is not valid for the object's storage class")
        if ongoing and plain_read and method == "HEAD":
            def ongoing_header(status, headers, exc_info=None):
                headers = [(h, v) for h, v in headers if h.lower() != "x-amz-restore"]
                headers.append(("x-amz-restore", 'ongoing-request="true"'))
                return start_response(status, headers, exc_info)
            return self.app(environ, ongoing_header)
        return self.app(environ, start_response)

    def restore_started(self, name, start_response):
        """start_response that starts the delay when moto accepts a first
        restore (202; a 200 means the object was already restored)."""
        def wrapped(status, headers, exc_info=None):
            if status.startswith("202"):
                with self.lock:
                    self.ready_at[name] = time.monotonic() + self.delay
            return start_response(status, headers, exc_info)
        return wrapped

    def restores(self, method, start_response):
        with self.lock:
            if method == "DELETE":
                self.counts.clear()
            body = json.dumps(self.counts, sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]


def error(start_response, status, code, message):
    body = ERROR.format(code=code, message=message).encode()
    start_response(status, [("Content-Type", "application/xml"),
                            ("Content-Length", str(len(body)))])
    return [body]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("--restore-delay", type=float, default=0.0, metavar="SECONDS")
    args = p.parse_args()
    app = SlowRestores(DomainDispatcherApplication(create_backend_app), args.restore_delay)
    # Loopback only: the tests are the only clients.
    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()

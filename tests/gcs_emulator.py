"""A local Google Cloud Storage for the tests, offline, on 127.0.0.1 (free ports).

    with EmulatorProcess(bucket="pmlv-test") as emu:
        env = emu.env()          # for os.environ or a subprocess: every layer then uses it

One child process runs three servers:

- ``gcp-storage-emulator`` (PyPI), in memory, with the bucket created. google-cloud-storage and
  Beam's GCS IO honour ``STORAGE_EMULATOR_HOST``;
- a TLS-terminating CONNECT proxy for TensorFlow: TF 2.21's gs:// file system has its endpoints
  compiled in (``https://www.googleapis.com/storage/v1/``, ``storage.googleapis.com``: no
  ``STORAGE_EMULATOR_HOST``, no endpoint setting), but it talks through libcurl, which honours
  ``https_proxy``, and it takes its CA file from ``CURL_CA_BUNDLE``. The proxy answers TLS for
  those two host names with a throw-away CA and forwards plain HTTP to the emulator;
- a fake GCE metadata server, so that google-auth (Beam) and TF find "credentials" at once
  instead of retrying for ~20 s a process.

Why a child process: some TF calls (``TFRecordWriter``, ``saved_model.save``) hold the GIL while
libcurl waits for the answer, so servers running as threads of the test process never answer.

Run as a script (what :class:`EmulatorProcess` does), it prints one JSON line with the ports,
then serves until SIGTERM or until its stdin closes (the parent went away).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import http.server
import json
import os
import re
import select
import signal
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse

GCS_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
PROJECT = "test-project"
STORAGE_LAYOUT = re.compile(r"^/storage/v1/b/([^/?]+)/storageLayout(?:\?.*)?$")
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "expect",
    "content-length",
}


class EmulatorUnavailable(RuntimeError):
    """The emulator could not be started (the tests skip, with this message)."""


def _ca_key_usage():
    from cryptography import x509

    flags = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
        **flags,
    )


def make_ca_and_cert(directory: str, hosts=GCS_HOSTS) -> dict:
    """A throw-away CA and a certificate for ``hosts`` signed by it, as PEM files in
    ``directory``: ``{"ca": ..., "cert": ..., "key": ...}``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pmlv test CA")])

    def builder(subject, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    ca_cert = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = (
        builder(leaf, key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    blobs = {
        "ca": ca_cert.public_bytes(pem),
        "cert": cert.public_bytes(pem),
        "key": key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    paths = {}
    for name, blob in blobs.items():
        paths[name] = os.path.join(directory, f"{name}.pem")
        with open(paths[name], "wb") as f:
            f.write(blob)
    return paths


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    """CONNECT to a GCS host -> TLS inside the tunnel -> each request forwarded to the emulator."""

    protocol_version = "HTTP/1.1"
    tunnel_host = None

    def log_message(self, fmt, *args):
        pass

    def do_CONNECT(self):
        host = self.path.split(":")[0]
        if host not in self.server.allowed_hosts:
            self.send_error(403, "only the GCS hosts are proxied")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb", -1)
        self.wfile = socketserver._SocketWriter(self.connection)
        self.tunnel_host = host
        self.close_connection = False  # go on reading requests inside the tunnel

    def _forward(self):
        if self.tunnel_host is None:
            self.send_error(400, "plain-HTTP proxying is not supported")
            return
        body = self._read_body()
        layout = STORAGE_LAYOUT.match(self.path)
        if layout and self.command == "GET":
            self._answer_storage_layout(layout.group(1))
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Content-Length"] = str(len(body))
        headers["Host"] = self.tunnel_host  # the emulator builds upload URLs from Host
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        if answer.status >= 400:  # into the emulator's log (EmulatorProcess.log_path)
            print(f"{self.command} {self.path} -> {answer.status}", file=sys.stderr, flush=True)
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() in HOP_HEADERS:
                continue
            if name.lower() == "location":  # resumable uploads: stay inside the TLS tunnel
                value = value.replace(f"http://{self.tunnel_host}", f"https://{self.tunnel_host}")
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer_storage_layout(self, bucket: str) -> None:
        # TF 2.21 asks for the bucket's layout before renaming a folder (hierarchical namespace
        # buckets rename folders in one call); the emulator does not know this call (404).
        data = json.dumps(
            {
                "kind": "storage#storageLayout",
                "bucket": urllib.parse.unquote(bucket),
                "location": "US",
                "locationType": "multi-region",
                "hierarchicalNamespace": {"enabled": False},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        # libcurl sends TF's upload PUTs chunked although TF adds a Content-Length header;
        # chunked wins (RFC 9112 6.3): decode it, forward with a plain Content-Length.
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _forward


def _threaded_server(handler, **attributes) -> http.server.ThreadingHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1:<free port>, serving on a daemon thread."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    for name, value in attributes.items():
        setattr(httpd, name, value)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def start_proxy(upstream_port: int, pem: dict) -> http.server.ThreadingHTTPServer:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pem["cert"], pem["key"])
    return _threaded_server(
        _ProxyHandler, upstream_port=upstream_port, allowed_hosts=set(GCS_HOSTS), tls=tls
    )


def start_metadata_server() -> http.server.ThreadingHTTPServer:
    """The GCE metadata answers google-auth and TF ask for (project, account, a dummy token)."""
    account = {
        "email": f"emulator@{PROJECT}.iam.gserviceaccount.com",
        "aliases": ["default"],
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    token = {"access_token": "emulator-token", "expires_in": 3600, "token_type": "Bearer"}
    base = "/computeMetadata/v1"
    routes = {
        "/": "",
        f"{base}/project/project-id": PROJECT,
        f"{base}/project/numeric-project-id": "1234",
        f"{base}/instance/service-accounts/default/": json.dumps(account),
        f"{base}/instance/service-accounts/default/token": json.dumps(token),
        f"{base}/universe/universe-domain": "googleapis.com",
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            body = routes.get(self.path.split("?")[0])
            data = (body or "").encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Metadata-Flavor", "Google")
            kind = "application/json" if data[:1] == b"{" else "text/plain"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return _threaded_server(Handler)


def patch_empty_media_upload() -> None:
    """gcp-storage-emulator 2026.7.19 fails (``len(None)``) on an empty ``uploadType=media``
    body, which is how TF's ``makedirs`` writes its ``dir/`` marker: treat it as ``b""``."""
    from gcp_storage_emulator.handlers import objects

    original = objects._media_upload
    if getattr(original, "pmlv_patched", False):
        return

    def media_upload(request, response, storage):
        if request.data is None:
            request._data = b""
        return original(request, response, storage)

    media_upload.pmlv_patched = True
    objects._media_upload = media_upload


def tf_gcs_env(proxy_port: int, ca_file: str) -> dict:
    """TF's gs:// through the proxy, failing fast: with TF's default retry settings a call
    whose server is gone retries for ~197 s; with these, ~2 s."""
    proxy = f"http://127.0.0.1:{proxy_port}"
    return {
        "https_proxy": proxy,  # libcurl: the proxy for https:// URLs
        "HTTPS_PROXY": proxy,
        "no_proxy": "127.0.0.1,localhost",  # everything else (our servers) goes direct
        "NO_PROXY": "127.0.0.1,localhost",
        "CURL_CA_BUNDLE": ca_file,  # TF: CURLOPT_CAINFO
        "GCS_RETRY_CONFIG_MAX_RETRIES": "2",  # default 10, with 1 s .. 32 s back-off
        "GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "100000",
        "GCS_RETRY_CONFIG_MAX_DELAY_TIME_US": "1000000",
        "GCS_REQUEST_CONNECTION_TIMEOUT_SECS": "5",  # default 120
        "GCS_METADATA_REQUEST_TIMEOUT_SECS": "10",
        "GCS_READ_REQUEST_TIMEOUT_SECS": "30",
        "GCS_WRITE_REQUEST_TIMEOUT_SECS": "30",
        "GCS_STAT_CACHE_MAX_AGE": "0",  # the 5 s stat cache would hide other processes' writes
        "GCS_READ_CACHE_MAX_SIZE_MB": "0",
    }


def serve(bucket: str, workdir: str) -> None:
    """The child process: start the three servers, print their ports, wait to be stopped."""
    from gcp_storage_emulator.server import create_server

    patch_empty_media_upload()
    storage = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)
    storage.start()
    storage_port = storage._api._httpd.server_address[1]
    pem = make_ca_and_cert(workdir)
    proxy, metadata = start_proxy(storage_port, pem), start_metadata_server()
    ports = dict(
        emulator_port=storage_port,
        proxy_port=proxy.server_address[1],
        metadata_port=metadata.server_address[1],
    )
    print(json.dumps({**ports, "ca": pem["ca"], "bucket": bucket}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    for server in (metadata, proxy):
        server.shutdown()
        server.server_close()
    storage.stop()


class EmulatorProcess:
    """The emulator, proxy and metadata server in a child process (:func:`serve`)."""

    def __init__(self, bucket: str = "pmlv-test", python: str = sys.executable):
        self.bucket, self.python = bucket, python
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.workdir = self.log_path = ""

    def start(self, timeout: float = 60.0) -> EmulatorProcess:
        """Start the child; EmulatorUnavailable (with its log) when it does not come up."""
        self.workdir = tempfile.mkdtemp(prefix="pmlv-gcs-emulator-")
        self.log_path = log_path = os.path.join(self.workdir, "emulator.log")
        cmd = [self.python, os.path.abspath(__file__), "--bucket", self.bucket]
        cmd += ["--workdir", self.workdir]
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            with open(log_path, errors="replace") as f:
                tail = f.read()[-1500:]
            raise EmulatorUnavailable(f"the GCS emulator did not start within {timeout} s: {tail}")
        self.info = json.loads(line)
        return self

    def env(self) -> dict:
        """The environment every layer needs: STORAGE_EMULATOR_HOST (google-cloud-storage,
        Beam), the proxy, CA and retry settings (TensorFlow), the fake metadata server
        (google-auth and TF credentials; NO_GCE_CHECK must then be unset)."""
        env = tf_gcs_env(self.info["proxy_port"], self.info["ca"])
        metadata = f"127.0.0.1:{self.info['metadata_port']}"
        env.update(
            STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{self.info['emulator_port']}",
            GOOGLE_CLOUD_PROJECT=PROJECT,
            GCE_METADATA_HOST=metadata,  # google-auth and TF
            GCE_METADATA_IP=metadata,  # google-auth's ping
        )
        return env

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bucket", default="pmlv-test")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    serve(args.bucket, args.workdir or tempfile.mkdtemp(prefix="pmlv-gcs-emulator-"))

"""What stands in front of the Gradio server: sign-in throttling, nothing of the app before sign-in, and
files that download rather than render.

``Guard`` is an ASGI middleware (``launch(app_kwargs={"middleware": [...]})``, see ``launch_kwargs``):

- **Sign-in attempts are throttled.** An address may fail ``ADDRESS_FAILURES`` times and a user name
  ``USER_FAILURES`` times within ``WINDOW_S`` seconds; further attempts from that address, or for that
  name, are answered 429 (with ``Retry-After``) without checking the password, until the oldest failure
  leaves the window. A successful sign-in clears that address's and that name's failures. The form is
  read as the sign-in reads it (urlencoded or multipart); a form with more or fewer than one user name or
  password is refused (400) before anything is checked. An ``X-Forwarded-For`` header counts only when
  ``trusted_proxy`` names the address it came through (``app.py --trusted-proxy``): without it, every
  request whose address the server took from that header counts as the proxy's own address.
- **Nothing but the sign-in page before sign-in.** Gradio's page embeds the API description (every
  endpoint, label and class name) even when it shows only the sign-in form; the guard removes it from
  a page whose config says a sign-in is required.
- **Files download.** A file of the project's ``exports/`` folder is sent as an attachment; a file that a
  browser would run as a page or a script (``.html``, ``.svg``, ``.js`` …) is sent as
  ``application/octet-stream``; every file response says ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

ADDRESS_FAILURES = 5  # failed sign-ins per address …
USER_FAILURES = 10  # … and per user name …
WINDOW_S = 600.0  # … within this many seconds
INLINE_TYPES = (b"image/png", b"image/jpeg", b"image/webp", b"image/gif")  # what a file route may render
_FILE_ROUTE = re.compile(r"^(?:/gradio_api)?/file[=/](.*)$", re.S)
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)


class Throttle:
    """Failed sign-ins per key (an address or a user name) within a sliding window."""

    def __init__(self, limit: int, window_s: float, clock=time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> collections.deque:
        q = self._failures.setdefault(key, collections.deque())
        while q and self.clock() - q[0] > self.window_s:
            q.popleft()
        return q

    def wait_s(self, key: str) -> float:
        """0 if ``key`` may try now, else the seconds until its oldest failure leaves the window."""
        with self._lock:
            q = self._recent(key)
            return 0.0 if len(q) < self.limit else max(1.0, self.window_s - (self.clock() - q[0]))

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self.clock())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


@functools.lru_cache(maxsize=1)
def _gradio_cache() -> Path:
    """Where Gradio keeps the files it serves, each in a folder named by the hash of its bytes (looked up once:
    every file request asks)."""
    from gradio.utils import get_upload_folder

    return Path(os.path.realpath(get_upload_folder()))


def _header(scope, name: bytes) -> Optional[bytes]:
    return next((v for k, v in scope.get("headers", []) if k.lower() == name), None)


async def _form_fields(scope, body: bytes) -> tuple[list[str], list[str]]:
    """Every ``username`` and every ``password`` of a sign-in body, read as the sign-in reads its form
    (Starlette's parser: urlencoded or multipart); nothing for a body that is not a form."""
    from starlette.requests import Request

    async def once():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
    except Exception:  # a body the form parser refuses: the sign-in refuses it too
        return [], []
    text = lambda values: [v if isinstance(v, str) else "" for v in values]
    return text(form.getlist("username")), text(form.getlist("password"))


class Guard:
    """The ASGI middleware; ``project_dir``'s ``exports/`` is the folder whose files download."""

    def __init__(self, app, project_dir: str = ".", trusted_proxy: Optional[str] = None):
        self.app = app
        self.exports = Path(os.path.realpath(Path(project_dir) / "exports"))
        self.trusted_proxy = trusted_proxy
        self.by_address = Throttle(ADDRESS_FAILURES, WINDOW_S)
        self.by_user = Throttle(USER_FAILURES, WINDOW_S)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if scope["method"] == "POST" and path.rstrip("/") == "/login":
            return await self._login(scope, receive, send)
        served = _FILE_ROUTE.match(path)  # Gradio's file route, and its older spelling /file/<path>
        if served:
            return await self._file(scope, receive, send, unquote(served.group(1)))
        if scope["method"] in ("GET", "HEAD") and not path.startswith("/gradio_api/") and "." not in path.rsplit("/", 1)[-1]:
            return await self._page(scope, receive, send)
        return await self.app(scope, receive, send)

    # -- sign-in --------------------------------------------------------------------------------
    def _address(self, scope) -> str:
        """The address a sign-in counts against. The server replaces the peer's address with the one an
        ``X-Forwarded-For`` header names when the peer is a proxy it trusts (loopback, by default); unless
        ``trusted_proxy`` says so, such a request counts against the proxy itself, so that a changing header
        cannot reset the count."""
        client = (scope.get("client") or ("?", 0))[0]
        forwarded = _header(scope, b"x-forwarded-for")
        if forwarded is not None:
            named = [a.strip() for a in forwarded.decode("latin-1").split(",")]
            if client in named and not self.trusted_proxy:
                return "a proxy (X-Forwarded-For not trusted)"
        return client

    async def _login(self, scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        address = self._address(scope)
        users, passwords = await _form_fields(scope, body)
        if len(users) != 1 or len(passwords) != 1:  # the sign-in would read one of several: refuse them all
            self.by_address.failed(f"address {address}")
            payload = json.dumps({"detail": "A sign-in needs exactly one username and one password field."}).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            return await send({"type": "http.response.body", "body": payload})
        user = users[0].strip()
        keys = (self.by_address, f"address {address}"), (self.by_user, f"user {user}")
        wait = max(t.wait_s(k) for t, k in keys)
        if wait > 0:
            detail = (f"Too many failed sign-ins; try again in {wait:.0f} s (at most {ADDRESS_FAILURES} failures per "
                      f"address and {USER_FAILURES} per user name in {WINDOW_S / 60:.0f} minutes).")
            payload = json.dumps({"detail": detail}).encode()
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", str(int(wait)).encode()),
                                    (b"content-length", str(len(payload)).encode())]})
            return await send({"type": "http.response.body", "body": payload})
        sent = {"body": False}

        async def replay():
            if sent["body"]:
                return {"type": "http.disconnect"}
            sent["body"] = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message):
            if message["type"] == "http.response.start":
                ok = message["status"] == 200
                for throttle, key in keys:
                    (throttle.succeeded if ok else throttle.failed)(key)
            await send(message)
        return await self.app(scope, replay, watch)

    # -- the page before sign-in ----------------------------------------------------------------
    async def _page(self, scope, receive, send):
        start: dict = {}
        chunks: list[bytes] = []

        async def hold(message):
            if message["type"] == "http.response.start":
                start.update(message)
                ctype = dict((k.lower(), v) for k, v in message.get("headers", [])).get(b"content-type", b"")
                if not ctype.startswith(b"text/html"):
                    start["pass"] = True
                    await send(message)
                return
            if start.get("pass"):
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if b'"auth_required":true' in body:  # Gradio shows only the sign-in form: nothing of the app goes with it
                body = _API_INFO.sub(b"window.gradio_api_info = {};</script>", body)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": start["status"], "headers": headers})
            await send({"type": "http.response.body", "body": body})
        return await self.app(scope, receive, hold)

    # -- files ----------------------------------------------------------------------------------
    async def _file(self, scope, receive, send, name: str):
        try:
            real = Path(os.path.realpath(name))
            export = real.is_relative_to(self.exports)
            named = Path(os.path.abspath(name)).is_relative_to(self.exports)
            # an export's file is served only when it is a regular file inside the export, reached by no link
            refuse = (export or named) and (not export or Path(name).is_symlink() or not real.is_file()
                                            or any(p.is_symlink() for p in Path(os.path.abspath(name)).parents
                                                   if p.is_relative_to(self.exports)))
            # Gradio's cache names each file by a hash of its bytes: the same URL is the same picture for good, so the
            # browser may keep it (a gallery page shown again is not fetched again, thumbnail by thumbnail)
            immutable = not export and real.is_relative_to(_gradio_cache())
        except (OSError, ValueError):
            export, refuse, immutable = False, False, False
        if refuse:
            payload = b"Not a regular file of an export."
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(payload)).encode())]})
            return await send({"type": "http.response.body", "body": payload})

        async def safe(message):
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = [(k, v) for k, v in message.get("headers", [])]
                ctype = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"").split(b";")[0].strip()
                drop = {b"x-content-type-options"}
                if export or ctype not in INLINE_TYPES:
                    drop |= {b"content-disposition"}
                    headers = [(k, v) for k, v in headers if k.lower() not in drop]
                    filename = Path(name).name.encode("ascii", "replace").replace(b'"', b"_")
                    headers.append((b"content-disposition", b'attachment; filename="' + filename + b'"'))
                    if ctype not in INLINE_TYPES + (b"application/zip", b"text/csv", b"application/json"):
                        headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                        headers.append((b"content-type", b"application/octet-stream"))
                else:
                    headers = [(k, v) for k, v in headers if k.lower() not in drop]
                headers.append((b"x-content-type-options", b"nosniff"))
                if immutable:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"private, max-age=86400, immutable"))
                message = {**message, "headers": headers}
            await send(message)
        return await self.app(scope, receive, safe)

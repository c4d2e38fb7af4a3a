"""Start the DDB Studio web app: python app.py [--project DIR] [--host 127.0.0.1] [--port 7860].

For a team: ``--host 0.0.0.0 --auth USER:PASS`` (or ``DDB_AUTH=USER:PASS``; several users with
``--auth A:x --auth B:y``) and ``--data-root /data`` for each folder the browser may name. On an
address other than this machine's loopback the app refuses to start without ``--auth`` unless
``--insecure`` says that anyone who reaches the port may change every decision.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def is_loopback(host: str) -> bool:
    if host in ("localhost", "::1"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        user, sep, password = v.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"error: --auth expects USER:PASS (both non-empty), got {v!r}")
        out.append((user, password))
    return out


def main(argv=None) -> None:
    from ddb_core.api import DEFAULT_PROJECT
    from ddb_core.project.device import flush_denormals

    flush_denormals()  # before torch starts its compute threads, so that they inherit it

    parser = argparse.ArgumentParser(description="DDB Studio web app")
    parser.add_argument("--project", default=DEFAULT_PROJECT,
                        help="project folder (default: %(default)s, the offline demo, built in the background if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default; needs --auth)")
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASS",
                        help="require a sign-in (repeatable, one per user; or the DDB_AUTH variable, USER:PASS[,USER:PASS])")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --host (or --share) without --auth: anyone who reaches the port can "
                             "read the review screens and change every decision")
    parser.add_argument("--data-root", action="append", default=[], metavar="DIR",
                        help="a folder whose paths the browser may name (datasets, checkpoints, model folders); "
                             "repeatable (default: the folder the app is started from; the project's own folder always)")
    parser.add_argument("--trusted-proxy", metavar="ADDR",
                        help="the address of a reverse proxy in front of the app: only then does its X-Forwarded-For "
                             "header name the address a sign-in is counted against")
    parser.add_argument("--no-build", action="store_true", help="do not build the demo project in the background")
    parser.add_argument("--build-demo", action="store_true",
                        help="build the offline demo in --project even when it is not the default demo folder")
    a = parser.parse_args(argv)
    auth = parse_auth(a.auth or [v for v in os.environ.get("DDB_AUTH", "").split(",") if v.strip()])
    exposed = a.share or not is_loopback(a.host)
    if exposed and not auth and not a.insecure:
        print(f"error: --host {a.host}{' --share' if a.share else ''} exposes the app beyond this machine, and without "
              f"--auth USER:PASS anyone who reaches it can change every decision. Add --auth (or DDB_AUTH), or pass "
              f"--insecure if that is really what you want.", file=sys.stderr)
        raise SystemExit(2)
    for root in a.data_root:
        if not os.path.isdir(root):
            raise SystemExit(f"error: --data-root {root} is not a folder")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ui.app import build_app, launch_kwargs

    is_demo = a.build_demo or os.path.abspath(a.project) == os.path.abspath(DEFAULT_PROJECT)
    app = build_app(a.project, build_demo=is_demo and not a.no_build, data_roots=a.data_root or None)
    app.launch(server_name=a.host, server_port=a.port, share=a.share, show_error=True, auth=auth or None,
               **launch_kwargs(a.project, trusted_proxy=a.trusted_proxy))


if __name__ == "__main__":
    main()

"""Start the DDB Studio web app: python app.py [--project DIR] [--host 127.0.0.1] [--port 7860]."""

from __future__ import annotations

import argparse
import os


def main(argv=None) -> None:
    from ddb_core.api import DEFAULT_PROJECT

    parser = argparse.ArgumentParser(description="DDB Studio web app")
    parser.add_argument("--project", default=DEFAULT_PROJECT,
                        help="project folder (default: %(default)s, the offline demo, built in the background if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    parser.add_argument("--no-build", action="store_true", help="do not build the demo project in the background")
    parser.add_argument("--build-demo", action="store_true",
                        help="build the offline demo in --project even when it is not the default demo folder")
    a = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ui.app import build_app, launch_kwargs

    is_demo = a.build_demo or os.path.abspath(a.project) == os.path.abspath(DEFAULT_PROJECT)
    app = build_app(a.project, build_demo=is_demo and not a.no_build)
    app.launch(server_name=a.host, server_port=a.port, share=a.share, show_error=True, **launch_kwargs(a.project))


if __name__ == "__main__":
    main()

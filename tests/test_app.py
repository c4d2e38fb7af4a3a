"""The app: a real Gradio server bound to 127.0.0.1 showing the open project."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from ddb_core.api import train_erm
from ddb_core.classifiers.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_app_serves_the_project_page_on_localhost(tiny_project):
    from ui.app import build_app

    train_erm(tiny_project, TrainConfig(image_size=32, epochs=1, batch_size=16))
    app = build_app(str(tiny_project.root), build_demo=False)
    try:
        app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        url = app.local_url
        assert url.startswith("http://127.0.0.1:")
        config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
        texts = json.dumps(config)
        assert "DDB Studio" in texts and "landbird/water" in texts and "worst-group accuracy" in texts
    finally:
        app.close()


def test_light_import():
    code = ("import sys, ddb_core, ddb_core.api, ddb_core.cli;"
            "heavy=[m for m in ('torch','torchvision','diffusers','transformers','captum','segment_anything','gradio') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_app_help_defaults_to_localhost():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "127.0.0.1" in out.stdout and "--share" in out.stdout

"""The server in front of the app (ui/guard.py) and the path check of the browser's fields (ui/state.py),
on a real Gradio server: sign-ins throttled per address and per user name, nothing of the app in the page
before sign-in, exports and page-like files downloaded, and paths checked again when they are used."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ddb_core import api
from ddb_core.project.errors import DDBError


def _post(opener, url, user, password):
    data = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        return opener.open(url + "login", data=data, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture()
def served(candidates_project):
    from ui.app import build_app, launch_kwargs

    p = candidates_project
    app = build_app(str(p.root), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
               auth=[("ann", "s3cret"), ("bob", "pw2")], **launch_kwargs(str(p.root)))
    try:
        yield p, app.local_url
    finally:
        app.close()


def test_sign_ins_are_throttled_per_address_and_a_success_clears_them(served):
    from ui.guard import ADDRESS_FAILURES

    p, url = served
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert _post(opener, url, "ann", "s3cret") == 200
    codes = [_post(opener, url, "ann", f"wrong{k}") for k in range(ADDRESS_FAILURES)]
    assert codes == [400] * ADDRESS_FAILURES  # the password is checked this many times …
    # … then the address waits, even with the right password, for another name too
    for user, password in (("ann", "s3cret"), ("bob", "pw2"), ("ann", "wrong")):
        try:
            opener.open(url + "login", data=urllib.parse.urlencode({"username": user, "password": password}).encode(),
                        timeout=30)
            raise AssertionError("a sign-in went through while the address was throttled")
        except urllib.error.HTTPError as e:
            assert e.code == 429
            assert int(e.headers["Retry-After"]) > 0
            assert "Too many failed sign-ins" in e.read().decode()


def test_throttle_counts_a_window_per_key_and_forgets_after_success():
    from ui.guard import Throttle

    now = [0.0]
    t = Throttle(3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        assert t.wait_s("user ann") == 0
        t.failed("user ann")
    assert t.wait_s("user ann") == pytest.approx(60.0)
    assert t.wait_s("user bob") == 0  # another key is not affected
    now[0] = 30.0
    assert t.wait_s("user ann") == pytest.approx(30.0)
    now[0] = 61.0  # the oldest failure has left the window
    assert t.wait_s("user ann") == 0
    t.failed("user ann")
    t.succeeded("user ann")
    assert t.wait_s("user ann") == 0


def test_the_page_before_sign_in_holds_no_api_description(served):
    p, url = served
    before = urllib.request.urlopen(url, timeout=30).read().decode()
    assert '"auth_required":true' in before
    for secret in ("load_checkpoint", "save_models", "filter_psi", *p.class_names):
        assert secret not in before, secret
    for path in ("openapi.json", "docs", "redoc", "config", "gradio_api/info"):  # no description of the routes either
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + path, timeout=30)
        assert err.value.code in (401, 404), path
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert _post(opener, url, "ann", "s3cret") == 200
    after = opener.open(url, timeout=30).read().decode()
    assert "load_checkpoint" in after  # signed in, the page is whole


def test_exports_and_page_like_files_download_instead_of_rendering(served):
    p, url = served
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert _post(opener, url, "ann", "s3cret") == 200
    exports = p.root / "exports"
    exports.mkdir(exist_ok=True)
    (exports / "page.html").write_text("<script>alert(1)</script>")
    (exports / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (exports / "bundle.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    for name, ctype in (("page.html", "application/octet-stream"), ("logo.svg", "application/octet-stream"),
                        ("bundle.zip", "application/zip")):
        for route in ("gradio_api/file=", "gradio_api/file/"):  # the file route and its older spelling
            r = opener.open(url + f"{route}{exports / name}", timeout=30)
            assert r.status == 200
            assert r.headers["Content-Disposition"].startswith("attachment"), (route, name)
            assert r.headers["Content-Type"].split(";")[0] == ctype, (route, name, r.headers["Content-Type"])
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    (p.root / "reports" / "3").mkdir(parents=True)
    png = p.root / "reports" / "3" / "groups.png"
    from PIL import Image

    Image.new("RGB", (30, 20)).save(png)
    r = opener.open(url + f"gradio_api/file={png}", timeout=30)
    assert r.headers["Content-Type"] == "image/png" and "attachment" not in (r.headers["Content-Disposition"] or "")
    # a link placed in an export (to the checkpoint, or anything) is not served through it
    secret = p.root / "models" / "erm.pt"
    secret.parent.mkdir(exist_ok=True)
    if not secret.exists():
        secret.write_bytes(b"weights")
    (exports / "real-1.png").symlink_to(secret)
    (exports / "linked").symlink_to(p.root / "models", target_is_directory=True)
    for link in (exports / "real-1.png", exports / "linked" / "erm.pt"):
        try:
            opener.open(url + f"gradio_api/file={link}", timeout=30)
            raise AssertionError(f"{link} was served")
        except urllib.error.HTTPError as e:
            assert e.code in (403, 404), e.code


def test_a_path_is_checked_again_when_it_is_used(tmp_path, monkeypatch):
    """A hub-shaped model id that names no folder passes; once a folder of that name exists outside the
    allowed ones, the same text is a path and is refused. Dataset folders and checkpoints are never hub ids,
    and '..' in a relative path is resolved before the check."""
    from ui.state import check_path

    monkeypatch.chdir(tmp_path)
    allowed = tmp_path / "allowed"
    (allowed / "p" / "exports").mkdir(parents=True)
    roots = [allowed.resolve()]
    assert check_path("org/model", roots, "inpainting model", hub=True) == "org/model"
    assert check_path("sam_vit_b", roots, "masker option sam", hub=True) == "sam_vit_b"
    (tmp_path / "org" / "model").mkdir(parents=True)
    with pytest.raises(DDBError, match="inpainting model 'org/model' is outside"):
        check_path("org/model", roots, "inpainting model", hub=True)
    with pytest.raises(DDBError, match="is outside"):
        check_path("org/other", roots, "dataset folder")  # not a hub id: a path, resolved under the working folder
    walk = "allowed/p/exports/dataset-1/../../../../outside_ds"
    with pytest.raises(DDBError, match="is outside"):
        check_path(walk, roots, "dataset folder")
    for bad, why in (("a\x00b", "control character"), ("x" * 300, "too long"), (["a"], "text"), ({"p": 1}, "text"),
                     (3, "text")):
        with pytest.raises(DDBError, match=why):
            check_path(bad, roots, "checkpoint")


def test_the_app_checks_saved_model_paths_when_a_stage_starts(candidates_project, tmp_path):
    """A model path saved by the command line (or before a folder appeared) is checked when the app uses it."""
    from ui.pipeline import run_stage
    from ui.state import AppState

    p = candidates_project
    outside = tmp_path / "elsewhere" / "model"
    outside.mkdir(parents=True)
    state = AppState(str(p.root), build_demo=False, data_roots=[str(tmp_path / "allowed-only")])
    (tmp_path / "allowed-only").mkdir()
    api.set_pipeline_settings(p, inpaint_model=str(outside))
    with pytest.raises(DDBError, match="inpainting model .* is outside"):
        run_stage(state, "score", 0.5, 0, 1, 1, 7.5, 2)
    with pytest.raises(DDBError, match="inpainting model .* is outside"):
        state.inpainter()


def test_the_sign_in_lock_cannot_be_walked_round(served):
    """The guard reads the form as the sign-in does: repeated fields are refused, a multipart body is counted,
    and a forwarded-for header from this machine does not give a new address."""
    import uuid

    from ui.guard import ADDRESS_FAILURES, USER_FAILURES

    p, url = served

    def post(body: bytes, ctype: str, headers: dict | None = None) -> int:
        req = urllib.request.Request(url + "login", data=body, headers={"Content-Type": ctype, **(headers or {})})
        try:
            return urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            return e.code

    form = "application/x-www-form-urlencoded"
    # repeated fields: refused before any password is checked, whatever comes last
    assert post(b"username=decoy&username=ann&password=s3cret", form) == 400
    assert post(b"username=ann&password=x&password=s3cret", form) == 400

    def multipart(user: str, password: str) -> tuple[bytes, str]:
        b = uuid.uuid4().hex
        body = "".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                       for k, v in (("username", user), ("password", password))) + f"--{b}--\r\n"
        return body.encode(), f"multipart/form-data; boundary={b}"

    # multipart wrong guesses count, and so does each forwarded-for address sent from this machine
    codes = []
    for k in range(ADDRESS_FAILURES + 2):
        body, ctype = multipart("bob", f"wrong{k}")
        codes.append(post(body, ctype, {"X-Forwarded-For": f"10.0.0.{k + 1}"}))
    assert 429 in codes and codes.count(400) <= ADDRESS_FAILURES, codes
    body, ctype = multipart("bob", "pw2")
    assert post(body, ctype, {"X-Forwarded-For": "10.9.9.9"}) == 429  # even the right password waits
    assert USER_FAILURES >= ADDRESS_FAILURES

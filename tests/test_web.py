"""The web explorer: its JSON API (every bad request a 4xx with a clear message, the server still up) and the
page itself, driven in a real headless Chromium (Debian's chromium and chromedriver; nothing downloads a browser)."""

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from conftest import run_cli
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from facegen.web.app import MAX_UPLOAD_BYTES, create_app  # noqa: E402
from facegen.web.browser import LOADED_IMAGES, chromium_paths, explorer_in_background, headless_chromium  # noqa: E402

TINY = ["--set", "model.base_channels=4", "--set", "train.batch_size=4", "--set", "data.split=all", "--quiet"]


def _main(*argv):
    from facegen.cli import main

    assert main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def runs_folder(faces, tmp_path_factory):
    folder = tmp_path_factory.mktemp("web-runs")
    _main("train", "--preset", "dcgan32", "--data", str(faces), "--steps", "2", "--out", str(folder / "gan"), *TINY)
    _main("directions", str(folder / "gan"), "--from-seeds", "Smiling=1,2,3", "--from-seeds", "Eyeglasses=4,5,6")
    _main("train", "--preset", "vae64", "--data", str(faces), "--set", "data.resolution=32", "--steps", "2",
          "--out", str(folder / "vae"), *TINY)
    return folder


@pytest.fixture(scope="module")
def client(runs_folder):
    return TestClient(create_app([runs_folder]))


def _ids(client) -> dict[str, str]:
    return {run["name"]: run["id"] for run in client.get("/api/runs").json()["runs"]}


def _jpeg(size=(89, 109), colour=(180, 120, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _bomb() -> bytes:
    """A 1x1 PNG whose header claims 20,000 x 20,000 pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 20_000, 20_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# The API.


def test_runs_faces_edits_interpolation_and_photos(client):
    ids = _ids(client)
    assert set(ids) == {"gan", "vae"}
    detail = client.get(f"/api/runs/{ids['gan']}").json()
    assert [d["name"] for d in detail["directions"]] == ["Smiling", "Eyeglasses"] and detail["previews"]
    assert client.get(f"/api/runs/{ids['gan']}/curves.png").headers["content-type"] == "image/png"
    faces = client.get(f"/api/runs/{ids['gan']}/faces", params={"seeds": "0-15"}).json()["faces"]
    assert [f["seed"] for f in faces] == list(range(16)) and all(f["image"].startswith("data:image/png;base64,") for f in faces)
    plain = client.post(f"/api/runs/{ids['gan']}/edit", json={"face": {"seed": 3}}).json()["image"]
    assert plain == faces[3]["image"]  # no edit: the same face as the grid's
    edited = client.post(f"/api/runs/{ids['gan']}/edit", json={"face": {"seed": 3}, "add": {"Smiling": 3}}).json()["image"]
    removed = client.post(f"/api/runs/{ids['gan']}/edit", json={"face": {"seed": 3}, "remove": ["Smiling"]}).json()["image"]
    assert edited != plain and removed != plain
    frames = client.post(f"/api/runs/{ids['gan']}/interpolate", json={"a": {"seed": 1}, "b": {"seed": 2}, "steps": 5, "slerp": True}).json()
    assert len(frames["frames"]) == 5 and frames["frames"][0] == faces[1]["image"]
    for name in ("gan", "vae"):
        photo = client.post(f"/api/runs/{ids[name]}/photo", files={"file": ("me.jpg", _jpeg(), "image/jpeg")}).json()
        assert photo["psnr"] > 0 and photo["method"].startswith("encoder mean" if name == "vae" else "projection")
        again = client.post(f"/api/runs/{ids[name]}/edit", json={"face": {"photo": photo["token"]}}).json()
        assert again["image"] == photo["reconstruction"]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), [
    ("get", "/api/runs/0123456789ab", {}, 404, "unknown run id"),
    ("get", "/api/runs/..%2F..%2Fetc", {}, 404, "no such page or API route"),
    ("get", "/api/runs/..%5C..%5Cetc", {}, 404, "unknown run id"),
    ("get", "/static/../../pyproject.toml", {}, 404, "no such page"),
    ("get", "/static/%2e%2e/%2e%2e/pyproject.toml", {}, 404, "no such page"),
    ("get", "/api/runs/{gan}/faces", {"params": {"seeds": "../../etc/passwd"}}, 400, "is not a seed list"),
    ("get", "/api/runs/{gan}/faces", {"params": {"seeds": "0-999"}}, 400, "at most 64 per request"),
    ("get", "/api/runs/{gan}/faces", {"params": {"seeds": "99999999999999999999"}}, 400, "seeds go up to"),
    ("get", "/api/runs/{gan}/previews/99", {}, 404, "preview 99 does not exist"),
    ("get", "/api/runs/{gan}/previews/..%2Fconfig.json", {}, 404, "no such page"),
    ("get", "/api/runs/{gan}/previews/config.json", {}, 422, "valid integer"),
    ("post", "/api/runs/{gan}/edit", {"json": {"face": {"seed": -1}}}, 400, "a seed is a whole number"),
    ("post", "/api/runs/{gan}/edit", {"json": {"face": {"seed": 1}, "add": {"Smiling": 99}}}, 400, "must be a number in [-10, 10]"),
    ("post", "/api/runs/{gan}/edit", {"json": {"face": {"seed": 1}, "add": {"Smiling": "lots"}}}, 400, "must be a number"),
    ("post", "/api/runs/{gan}/edit", {"json": {"face": {"seed": 1}, "add": {"../../x": 1}}}, 400, "unknown direction"),
    ("post", "/api/runs/{gan}/edit", {"json": {"face": {"photo": "nope"}}}, 404, "unknown photo token"),
    ("post", "/api/runs/{gan}/edit", {"json": {"face": "/etc/passwd"}}, 400, 'a face is {"seed": N}'),
    ("post", "/api/runs/{gan}/edit", {"content": b"not json"}, 400, "not JSON"),
    ("post", "/api/runs/{gan}/interpolate", {"json": {"a": {"seed": 1}, "b": {"seed": 2}, "steps": 1000}}, 400, "from 2 to 32"),
    ("post", "/api/runs/{gan}/photo", {"files": {"file": ("big.jpg", b"\xff" * (MAX_UPLOAD_BYTES + 10), "image/jpeg")}}, 413, "over 10 MB"),
    ("post", "/api/runs/{gan}/photo", {"files": {"file": ("notes.txt", b"hello", "text/plain")}}, 400, "is not an image Pillow can read"),
    ("post", "/api/runs/{gan}/photo", {"files": {"file": ("bomb.png", _bomb(), "image/png")}}, 400, "DecompressionBomb"),
    ("post", "/api/runs/{gan}/photo", {}, 422, "file"),
])
def test_bad_requests_are_4xx_with_a_clear_message_and_the_server_stays_up(client, method, path, kwargs, status, message):
    ids = _ids(client)
    response = getattr(client, method)(path.format(**ids), **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"] and "\n" not in response.json()["error"]
    assert client.get("/api/runs").status_code == 200


def test_serve_binds_this_machine_by_default_and_warns_for_others(monkeypatch, capsys, runs_folder):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    assert run_cli(capsys, "serve", str(runs_folder))[0] == 0
    code, out, _ = run_cli(capsys, "serve", str(runs_folder), "--host", "0.0.0.0", "--port", "8000")
    assert code == 0 and "warning: serving on 0.0.0.0" in out
    assert calls == [{"host": "127.0.0.1", "port": 7860, "log_level": "warning"}, {"host": "0.0.0.0", "port": 8000, "log_level": "warning"}]
    code, _, err = run_cli(capsys, "serve", "no-such-folder")
    assert code == 2 and "no-such-folder does not exist" in err


# The page in a real browser.

@pytest.fixture
def server(runs_folder):
    with explorer_in_background([runs_folder]) as url:
        yield url


@pytest.mark.skipif(not all(chromium_paths()), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_the_page_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("FACEGEN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with headless_chromium(1400, 1100) as driver:
        wait = WebDriverWait(driver, 30)
        # Runs view: both runs listed; a click shows the curves and the latest preview.
        driver.get(server)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")) == 2)
        driver.save_screenshot(str(shots / "1-runs.png"))
        row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr") if r.text.startswith("gan"))
        row.click()
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#run-curves, #run-preview") == 2 and "gan" == d.find_element(By.ID, "run-title").text)
        driver.save_screenshot(str(shots / "2-run.png"))

        # Explore view: a grid of 16 faces; focus one; a slider changes it.
        driver.find_element(By.ID, "explore-this").click()
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#faces img") == 16)
        driver.find_elements(By.CSS_SELECTOR, "#faces figure")[0].click()
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#focus-image") == 1)
        before = driver.find_element(By.ID, "focus-image").get_attribute("src")
        sliders = driver.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]")
        assert len(sliders) == 2
        driver.execute_script("arguments[0].value = 4; arguments[0].dispatchEvent(new Event('input'))", sliders[0])
        wait.until(lambda d: d.find_element(By.ID, "focus-image").get_attribute("src") != before)
        driver.save_screenshot(str(shots / "3-explore-slider.png"))

        # Interpolation between two faces.
        driver.find_element(By.ID, "mark-a").click()
        driver.find_elements(By.CSS_SELECTOR, "#faces figure")[5].click()
        driver.find_element(By.ID, "mark-b").click()
        driver.find_element(By.ID, "interpolate").click()
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#strip img") == 8)
        driver.save_screenshot(str(shots / "4-interpolation.png"))

        # A photo: its projection appears and becomes the face the sliders edit.
        photo = tmp_path / "me.jpg"
        photo.write_bytes(_jpeg())
        driver.find_element(By.ID, "photo-input").send_keys(str(photo))
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#photo-original, #photo-reconstruction") == 2)
        assert "PSNR" in driver.find_element(By.ID, "photo-caption").text
        driver.find_element(By.ID, "photo-focus").click()
        driver.save_screenshot(str(shots / "5-photo.png"))
        assert "error" not in driver.find_element(By.ID, "status").get_attribute("class")

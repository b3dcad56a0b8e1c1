"""sbsconvert serve: the web API with Starlette's TestClient (upload -> job -> progress -> output ->
gallery -> ranged download; cancel; the queue across a restart) and each security rule as an
attack that must fail."""

from __future__ import annotations

import io
import json
import shutil
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

from sbsconvert.serve.app import ServeConfig, create_app  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def served(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copy(SAMPLES / "chelsea.jpg", folder / "chelsea.jpg")
    return folder


@pytest.fixture
def maps(tmp_path: Path) -> Path:
    folder = tmp_path / "maps"
    shutil.copytree(SAMPLES / "disparity", folder)
    return folder


def make_app(served: Path, state: Path, maps: Path, **config: object):
    return create_app(ServeConfig(folders=[served], state=state, values={"disparity": str(maps)},
                                  event_stream_seconds=0.6, **config))


def upload(client: TestClient, source: Path, name: str | None = None, batch: str = "drop0001") -> dict:
    response = client.put("/api/upload", params={"batch": batch, "name": name or source.name},
                          content=source.read_bytes())
    assert response.status_code == 201, response.text
    return response.json()


def events_until(client: TestClient, job_id: str, finished: tuple[str, ...], limit: float = 240) -> list[dict]:
    """The job's states as the event stream gives them, until one of `finished` ("converting": the
    library is at work on it)."""
    seen: list[dict] = []
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        text = client.get("/api/events").text
        for line in text.splitlines():
            if line.startswith("data: "):
                job = next(job for job in json.loads(line[6:]) if job["id"] == job_id)
                if not seen or seen[-1] != job:
                    seen.append(job)
                if job["status"] in finished or "converting" in finished and job.get("converting"):
                    return seen
    raise AssertionError(f"job {job_id} never reached {finished}: {seen[-1:]}")


def test_upload_convert_progress_gallery_and_ranged_download(served: Path, maps: Path, tmp_path: Path) -> None:
    with TestClient(make_app(served, tmp_path / "state", maps)) as client:
        address = upload(client, SAMPLES / "chelsea.jpg")
        assert address == {"root": "uploads", "path": "drop0001/chelsea.jpg"}
        response = client.post("/api/jobs", json={"inputs": [address], "options": {"format": "sbs", "divergence": 2}})
        assert response.status_code == 201, response.text
        job = response.json()
        states = events_until(client, job["id"], ("done", "failed", "cancelled"))
        assert [state["status"] for state in states][-1] == "done", states[-1]
        assert "running" in [state["status"] for state in states]
        assert (states[-1]["done"], states[-1]["total"]) == (1, 1)
        output = states[-1]["outputs"][0]
        assert output == {"root": "converted", "path": f"{job['id']}/chelsea_LR.jpg"}

        gallery = client.get("/api/list", params={"root": "converted", "path": job["id"]}).json()
        [entry] = gallery["files"]
        assert (entry["name"], entry["kind"], entry["layout"], entry["stated"]) == ("chelsea_LR.jpg", "photo", "sbs", "name")
        with Image.open(SAMPLES / "chelsea.jpg") as source:
            width, height = source.size
        whole = client.get(f"/files/converted/{output['path']}")
        assert whole.status_code == 200
        with Image.open(io.BytesIO(whole.content)) as converted:
            assert converted.size == (2 * width, height)
        ranged = client.get(f"/files/converted/{output['path']}", headers={"Range": "bytes=100-1099"})
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 100-1099/{len(whole.content)}"
        assert ranged.content == whole.content[100:1100]
        thumb = client.get(f"/thumbs/converted/{output['path']}")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumb.content)) as small:
            assert small.width == 320

        library = client.get("/api/list", params={"root": "library"}).json()
        assert [item["name"] for item in library["files"]] == ["chelsea.jpg"]
        assert library["files"][0]["layout"] is None


def long_video(path: Path, seconds: int = 20, fps: int = 30) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for index in range(seconds * fps):
            pixels = np.full((120, 160, 3), (index * 3) % 255, np.uint8)
            pixels[:, (index % 160):, 1] = 200
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture
def long_clip(served: Path, maps: Path) -> Path:
    long_video(served / "long.mp4")
    shutil.copy(SAMPLES / "disparity" / "clip.png", maps / "long.png")
    return served / "long.mp4"


def test_cancel_a_running_video_leaves_no_output(served: Path, maps: Path, long_clip: Path, tmp_path: Path) -> None:
    with TestClient(make_app(served, tmp_path / "state", maps)) as client:
        job = client.post("/api/jobs", json={"inputs": [{"root": "library", "path": "long.mp4"}]}).json()
        events_until(client, job["id"], ("converting",))
        assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
        final = events_until(client, job["id"], ("done", "failed", "cancelled"))[-1]
        assert final["status"] == "cancelled", final
        assert final["outputs"] == []
        written = [path for path in (tmp_path / "state" / "converted" / job["id"]).rglob("*.mp4")]
        assert written == [], "a cancelled job published an output"


def test_queue_survives_a_restart_and_resumes(served: Path, maps: Path, long_clip: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with TestClient(make_app(served, state, maps)) as client:
        job = client.post("/api/jobs", json={"inputs": [{"root": "library", "path": "long.mp4"}],
                                             "options": {"format": "hsbs"}}).json()
        events_until(client, job["id"], ("converting",))
    # the server stopped during the job: it is kept, queued, in the state folder
    [kept] = json.loads((state / "jobs.json").read_text())
    assert (kept["id"], kept["status"]) == (job["id"], "queued")
    with TestClient(make_app(served, state, maps)) as client:
        final = events_until(client, job["id"], ("done", "failed", "cancelled"))[-1]
        assert final["status"] == "done", final
        assert final["outputs"] == [{"root": "converted", "path": f"{job['id']}/long_HSBS.mp4"}]
        listed = client.get("/api/list", params={"root": "converted", "path": job["id"]}).json()["files"]
        assert [(item["name"], item["kind"], item["layout"]) for item in listed] == [("long_HSBS.mp4", "video", "hsbs")]


# --- security: each rule as an attack that must fail ----------------------------------------------


def test_paths_cannot_leave_the_served_folders(served: Path, maps: Path, tmp_path: Path) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", outside / "secret.jpg")
    (served / "escape.jpg").symlink_to(outside / "secret.jpg")
    (served / "escape_dir").symlink_to(outside, target_is_directory=True)
    with TestClient(make_app(served, tmp_path / "state", maps)) as client:
        assert client.get("/files/library/chelsea.jpg").status_code == 200
        for attempt in ("/files/library/%2e%2e/private/secret.jpg", "/files/library/..%2fprivate%2fsecret.jpg",
                        f"/files/library/{outside / 'secret.jpg'}", "/files/library//" + str(outside / "secret.jpg"),
                        "/files/library/escape.jpg", "/files/library/escape_dir/secret.jpg",
                        "/thumbs/library/escape.jpg", "/files/nosuchroot/chelsea.jpg", "/files/library/.hidden.jpg"):
            response = client.get(attempt)
            assert response.status_code == 404, attempt
            assert response.json() == {"error": "not found"}
        for path in ("..", "../private", str(outside), "escape_dir"):
            response = client.get("/api/list", params={"root": "library", "path": path})
            assert response.status_code == 404, path
        listed = client.get("/api/list", params={"root": "library"}).json()
        assert [item["name"] for item in listed["files"]] == ["chelsea.jpg"] and listed["folders"] == []
        # a job cannot read outside either, nor name an output path
        refused = client.post("/api/jobs", json={"inputs": [{"root": "library", "path": "escape.jpg"}]})
        assert refused.status_code == 404
        refused = client.post("/api/jobs", json={"inputs": [{"root": "library", "path": "chelsea.jpg"}],
                                                 "options": {"output": str(tmp_path / "x.jpg")}})
        assert refused.status_code == 400 and "unknown output" in refused.json()["error"]
        refused = client.post("/api/jobs", json={"inputs": [{"root": "library", "path": "chelsea.jpg"}],
                                                 "options": {"divergence": "1; rm -rf /"}})
        assert refused.status_code == 400
        assert client.get("/api/jobs").json() == []


def test_a_network_bind_needs_the_token_on_every_request(served: Path, maps: Path, tmp_path: Path) -> None:
    from sbsconvert.errors import SbsError

    with pytest.raises(SbsError, match="access token"):
        make_app(served, tmp_path / "state", maps, host="0.0.0.0")
    token = "a-test-token-of-enough-length"
    app = make_app(served, tmp_path / "state", maps, host="0.0.0.0", token=token)
    with TestClient(app) as client:
        for path in ("/", "/api/jobs", "/api/settings", "/files/library/chelsea.jpg", "/thumbs/library/chelsea.jpg",
                     "/api/events", "/static/app.js"):
            for offered in ({}, {"params": {"token": "wrong"}}, {"headers": {"Authorization": "Bearer wrong"}},
                            {"headers": {"Cookie": f"sbsconvert_token={token[:-1]}"}}):
                client.cookies.clear()
                response = client.get(path, **offered)
                assert response.status_code == 401, (path, offered)
                assert "token" in response.json()["error"]
        client.cookies.clear()
        assert client.put("/api/upload", params={"batch": "drop0001", "name": "a.jpg"}, content=b"x").status_code == 401
        page = client.get("/", params={"token": token})
        assert page.status_code == 200 and "sbsconvert_token" in page.headers["set-cookie"]
        assert "httponly" in page.headers["set-cookie"].lower()
        # the page's later requests (media, event stream) carry the cookie
        assert client.get("/files/library/chelsea.jpg").status_code == 200
        client.cookies.clear()
        assert client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_uploads_are_bounded_and_named_safely(served: Path, maps: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with TestClient(make_app(served, state, maps, max_upload_bytes=60_000)) as client:
        photo = (SAMPLES / "chelsea.jpg").read_bytes()  # 50 kB
        too_large = (SAMPLES / "coffee.jpg").read_bytes()  # 105 kB
        response = client.put("/api/upload", params={"batch": "drop0001", "name": "coffee.jpg"}, content=too_large)
        assert response.status_code == 413 and "limit" in response.json()["error"]
        # without a Content-Length the stream is counted as it comes
        response = client.put("/api/upload", params={"batch": "drop0001", "name": "coffee.jpg"},
                              content=iter([too_large[:40_000], too_large[40_000:]]))
        assert response.status_code == 413
        assert [path for path in (state / "uploads").rglob("*") if path.is_file()] == []
        for name, status in (("../../evil.jpg", 400), ("..", 400), ("", 400), ("evil.sh", 415), ("x/../../a.jpg", 400),
                             ("a/b/c/d/e/f/g.jpg", 400), ("...", 400)):
            response = client.put("/api/upload", params={"batch": "drop0001", "name": name}, content=photo)
            assert response.status_code == status, name
            assert "error" in response.json()
        for batch in ("../x", "short", "a" * 40, ""):
            response = client.put("/api/upload", params={"batch": batch, "name": "a.jpg"}, content=photo)
            assert response.status_code == 400, batch
        kept = {name: client.put("/api/upload", params={"batch": "drop0002", "name": name}, content=photo).json()
                for name in ("/etc/cron.d/job.jpg", ".bashrc.jpg", "a\x00b<script>.jpg", "C:\\Users\\x.jpg", "same.jpg",
                             "same.jpg")}
        assert [address["path"] for address in kept.values()] == [
            "drop0002/etc/cron.d/job.jpg", "drop0002/bashrc.jpg", "drop0002/a_b_script_.jpg", "drop0002/C_/Users/x.jpg",
            "drop0002/same-2.jpg"]
        for file in (path for path in (state / "uploads").rglob("*") if path.is_file()):
            assert file.resolve().is_relative_to((state / "uploads" / "drop0002").resolve())
        assert not Path("/etc/cron.d/job.jpg").exists()


def test_errors_are_json_never_a_traceback(served: Path, maps: Path, tmp_path: Path) -> None:
    with TestClient(make_app(served, tmp_path / "state", maps), raise_server_exceptions=False) as client:
        for method, path, body in (("get", "/nothing/here", None), ("post", "/api/jobs", b"{not json"),
                                   ("post", "/api/jobs", b"[1, 2]"), ("post", "/api/jobs/nope/cancel", None),
                                   ("post", "/api/preview", b'{"input": {"root": "library", "path": "nope.jpg"}}')):
            response = client.request(method, path, content=body)
            assert response.status_code >= 400
            assert response.headers["content-type"] == "application/json", path
            assert "Traceback" not in response.text and "error" in response.json()


def test_preview_of_a_photo_with_the_current_settings(served: Path, maps: Path, tmp_path: Path) -> None:
    with TestClient(make_app(served, tmp_path / "state", maps)) as client:
        answers = [client.post("/api/preview", json={"input": {"root": "library", "path": "chelsea.jpg"},
                                                     "options": {"format": layout, "divergence": 3}}).json()
                   for layout in ("anaglyph", "tb")]
        for answer, layout in zip(answers, ("anaglyph", "tb")):
            assert answer["root"] == "previews" and answer["layout"] == layout
        with Image.open(SAMPLES / "chelsea.jpg") as source:
            width, height = source.size
        with Image.open(io.BytesIO(client.get(f"/files/previews/{answers[1]['path']}").content)) as made:
            assert made.size == (width, 2 * height)  # chelsea is smaller than the preview width: kept
            top, bottom = np.asarray(made, np.int16)[:height], np.asarray(made, np.int16)[height:]
        assert np.abs(top - bottom).mean() > 1  # the eyes differ: the map was found and used

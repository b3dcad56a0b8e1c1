"""sbsconvert serve on this computer (127.0.0.1 only): time from dropping a 1080p photo to its
preview (given disparity map, warp engine at preview size), the server's memory when idle, and a
bounded load test of parallel gallery requests (fixed count, fixed time limit).

    python bench/bench_serve.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
LOAD_REQUESTS = 2000
LOAD_PARALLEL = 64
LOAD_SECONDS = 120  # the load test stops here whatever happens


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    library, maps = work / "library", work / "maps"
    library.mkdir()
    maps.mkdir()
    with Image.open(ROOT / "samples" / "motorcycle.png") as photo:
        photo.convert("RGB").resize((1920, 1080), Image.Resampling.LANCZOS).save(work / "photo1080.jpg", quality=92)
    from sbsconvert.disparity import read_pfm, write_pfm

    write_pfm(maps / "photo1080.pfm", cv2.resize(read_pfm(ROOT / "samples" / "disparity" / "motorcycle.pfm"), (1920, 1080)))
    for index in range(40):  # a gallery to load
        shutil.copy(ROOT / "samples" / ("chelsea.jpg", "coffee.jpg")[index % 2], library / f"photo{index:02d}.jpg")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sbsconvert", "serve", str(library), "--port", str(port),
                               "--state", str(work / "state"), "--disparity", str(maps)],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            started = time.perf_counter()
            while True:
                try:
                    client.get("/api/settings")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            print(f"start-up to first answer: {time.perf_counter() - started:.2f} s")
            time.sleep(1)
            print(f"idle memory (RSS) after start-up: {rss_mib(server.pid):.0f} MiB")
            client.get("/api/list", params={"root": "library"})
            time.sleep(1)
            print(f"idle memory (RSS) after one gallery listing: {rss_mib(server.pid):.0f} MiB")

            photo = (work / "photo1080.jpg").read_bytes()
            times = []
            for attempt in range(6):
                begun = time.perf_counter()
                address = client.put("/api/upload", params={"batch": f"bench{attempt:04d}", "name": "photo1080.jpg"},
                                     content=photo).json()
                answer = client.post("/api/preview", json={"input": address, "options": {"format": "sbs"}})
                answer.raise_for_status()
                times.append(time.perf_counter() - begun)
            print(f"drop 1080p photo -> preview: first {times[0]:.2f} s (loads the library), then median "
                  f"{statistics.median(times[1:]):.2f} s (min {min(times[1:]):.2f}, max {max(times[1:]):.2f}); "
                  f"server-side conversion {answer.json()['seconds']:.2f} s")
            print(f"memory (RSS) after the previews: {rss_mib(server.pid):.0f} MiB")

        paths = [f"/thumbs/library/photo{index:02d}.jpg" for index in range(40)] + ["/api/list?root=library"]
        print(f"load: {LOAD_REQUESTS} gallery requests (thumbnails and listings), {LOAD_PARALLEL} at a time, "
              f"at most {LOAD_SECONDS} s:")
        print("  " + asyncio.run(load(url, paths)))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


async def load(url: str, paths: list[str]) -> str:
    statuses: list[int | str] = []
    latencies: list[float] = []
    pending = iter(range(LOAD_REQUESTS))

    async def worker(client: httpx.AsyncClient) -> None:
        for number in pending:
            begun = time.perf_counter()
            try:
                response = await client.get(paths[number % len(paths)])
                statuses.append(response.status_code)
            except httpx.HTTPError as error:
                statuses.append(type(error).__name__)
            latencies.append(time.perf_counter() - begun)

    limits = httpx.Limits(max_connections=LOAD_PARALLEL)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        begun = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(LOAD_PARALLEL))), LOAD_SECONDS)
        except asyncio.TimeoutError:
            pass
        seconds = time.perf_counter() - begun
    errors = sum(1 for status in statuses if status != 200)
    return (f"{len(statuses)} answered in {seconds:.1f} s ({len(statuses) / seconds:.0f}/s), {errors} errors, "
            f"latency median {1000 * np.median(latencies):.0f} ms, p99 {1000 * np.percentile(latencies, 99):.0f} ms")


if __name__ == "__main__":
    main()

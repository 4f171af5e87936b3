"""Time per request of the web explorer's API, in process (routing, validation, generation, PNG encoding
and JSON included; no network): a grid of 16 faces, one edit, an 8-frame interpolation and a photo.

    python benchmarks/web_latency.py RUN [RUN ...] [--repeats 20] [--photo face.jpg]

Run it on an idle machine; it prints the CPU and a table of median and 90th-percentile milliseconds.
"""

from __future__ import annotations

import argparse
import io
import math
import platform
import statistics
import time
from pathlib import Path

from PIL import Image


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()]
                return line.split(":", 1)[1].strip() + (f" ({', '.join(native)})" if native else " (no native bf16)")
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(call, repeats: int) -> tuple[float, float]:
    call()  # warm-up: the model loads and the kernels are chosen
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return statistics.median(times), times[math.ceil(0.9 * len(times)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--photo", help="a photo to upload (default: a flat test image)")
    args = parser.parse_args()

    import torch
    from fastapi.testclient import TestClient

    from facegen.web.app import create_app

    client = TestClient(create_app([Path(r) for r in args.runs]))
    if args.photo:
        photo = Path(args.photo).read_bytes()
    else:
        buffer = io.BytesIO()
        Image.new("RGB", (178, 218), (180, 120, 90)).save(buffer, format="JPEG")
        photo = buffer.getvalue()

    def ok(response):
        assert response.status_code == 200, response.text
        return response.json()

    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| run | model | grid of 16 | one edit | 8-frame interpolation | photo (method) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run in ok(client.get("/api/runs"))["runs"]:
        rid = run["id"]
        detail = ok(client.get(f"/api/runs/{rid}"))
        grid = timed(lambda i=0, rid=rid: ok(client.get(f"/api/runs/{rid}/faces", params={"seeds": f"{16 * i}-{16 * i + 15}"})), args.repeats)
        names = [d["name"] for d in detail["directions"]]
        edit = timed(lambda i=0, rid=rid, names=names: ok(client.post(f"/api/runs/{rid}/edit", json={
            "face": {"seed": i}, "add": {names[0]: (i % 9) - 4} if names else {}})), args.repeats)
        frames = timed(lambda i=0, rid=rid: ok(client.post(f"/api/runs/{rid}/interpolate", json={
            "a": {"seed": i}, "b": {"seed": i + 1}, "steps": 8, "slerp": True})), args.repeats)
        uploads = max(2, args.repeats // 10)
        method = ok(client.post(f"/api/runs/{rid}/photo", files={"file": ("face.jpg", photo, "image/jpeg")}))["method"]
        upload = timed(lambda i=0, rid=rid: ok(client.post(f"/api/runs/{rid}/photo", files={"file": ("face.jpg", photo, "image/jpeg")})), uploads)
        cell = lambda t: f"{t[0]:.0f} ms (p90 {t[1]:.0f})"  # noqa: E731
        model = f"{run['family']} {run['resolution']} px" + (f", {len(names)} directions" if names else "")
        print(f"| {run['name']} | {model} | {cell(grid)} | {cell(edit) if names else cell(edit) + ' (no direction)'} | "
              f"{cell(frames)} | {cell(upload)} ({method}) |")


if __name__ == "__main__":
    main()

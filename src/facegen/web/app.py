"""`facegen serve`: a local page that shows what runs are doing and what a trained model can do.

A thin caller of latent.py, encoding.py and report.py: every face comes from the functions the command
line uses. Runs are chosen by an id from the server's own list, never by a path from the client; every
bad request is a 4xx JSON {"error": "..."} and the server stays up. FastAPI and uvicorn are the extra
`facegen[web]`, imported only here.
"""


import asyncio
import base64
import hashlib
import io
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen import checkpoint as ckpt
from facegen import latent, report
from facegen.data import load_photo_bytes
from facegen.encoding import mse_psnr
from facegen.sample import MAX_SEED, parse_seeds

MAX_UPLOAD_BYTES = 10 * 2**20
MAX_FACES = 64  # per grid request
MAX_STRENGTH = 10.0  # in spreads across the attribute's boundary
MAX_FRAMES = 32
PROJECTION_STEPS = 60  # a photo's projection into a GAN: about a second at 64 px on a 2-core CPU
OPEN_MODELS = 3  # runs kept loaded
KEPT_PHOTOS = 32  # uploaded photos' latents kept for editing


class WebError(Exception):
    """A request the explorer refuses: its HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def png_data_url(image: np.ndarray) -> str:
    """uint8 (R, R, 3) as a PNG data URL at the model's own resolution (the page enlarges it pixel by pixel)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def run_id(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]


class Explorer:
    """The server's state: where to look for runs, a few open models, and the latents of uploaded photos."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = [Path(f) for f in folders]
        self.models: OrderedDict[str, tuple[Path, latent.LatentModel]] = OrderedDict()  # id -> (checkpoint, model)
        self.photos: OrderedDict[str, tuple[str, torch.Tensor]] = OrderedDict()  # token -> (run id, latent)
        # Every model computation runs on this one thread, one at a time: torch's intra-op threads are already busy,
        # and each new calling thread would start its own OpenMP team (measured: a projection 10x slower).
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facegen-model")
        self.known: dict[str, tuple[Path, str]] = {}  # the last scan: requests look runs up here, a miss rescans

    # Runs.

    def runs(self) -> dict[str, tuple[Path, str]]:
        """id -> (run directory, name shown), found afresh (the runs view calls this on every refresh)."""
        found = {}
        for folder in self.folders:
            if (folder / "config.json").is_file() and ckpt.latest(folder) is not None:
                found[run_id(folder)] = (folder, folder.name)
            elif folder.is_dir():
                for path in report.find_runs(folder):
                    found[run_id(path)] = (path, str(path.relative_to(folder)))
        self.known = found
        return found

    def run(self, rid: str) -> tuple[Path, str]:
        """The run directory and name of an id, without rescanning the folders unless the id is new."""
        if rid not in self.known and rid not in self.runs():
            raise WebError(404, f"unknown run id {rid[:40]!r}; GET /api/runs lists the runs this server knows")
        return self.known[rid]

    def summary(self, rid: str, path: Path, name: str) -> dict:
        records = report.read_metrics(path / "metrics.jsonl")
        state = ckpt.read_state(path)
        info = report.run_info(path)
        evaluation = report.read_evaluation(path / "eval.json") or {}
        quick = next((r["kid"] for r in reversed(records) if "kid" in r), None)
        speed = next((r["img_per_s"] for r in reversed(records) if r.get("img_per_s")), None)
        lock, metrics = path / "train.lock", path / "metrics.jsonl"
        # Training now: a PID in the lock (cleared at a clean end) and a record in the last two minutes (not a killed run).
        training = lock.is_file() and lock.read_text().strip() != "" and metrics.is_file() and time.time() - metrics.stat().st_mtime < 120
        return {"id": rid, "name": name, "preset": info.get("preset"), "family": state["config"]["model"]["family"],
                "resolution": state["config"]["data"]["resolution"], "steps": state.get("step"),
                "logged_step": records[-1]["step"] if records else None, "img_per_s": speed,
                "kid": evaluation.get("kid", quick), "kid_kind": "evaluate" if "kid" in evaluation else "quick" if quick is not None else None,
                "training": training}

    def detail(self, rid: str) -> dict:
        path, name = self.run(rid)
        model = self.model(rid)
        directions = latent.load_directions(path, required=False)
        return {**self.summary(rid, path, name),
                "config": report.flatten_config(model.checkpoint.state["config"]),  # the checkpoint already loaded
                "previews": [p.name for p in self.previews(path)],
                "curves": (path / "training.png").is_file(),
                "encoder": model.E is not None,
                "conditions": model.condition_names,  # a conditional model: one toggle each (-1 / unspecified / +1)
                "directions": [{"name": d.name, "method": d.method, "accuracy": d.accuracy, "n": d.n} for d in directions.values()]}

    @staticmethod
    def previews(path: Path) -> list[Path]:
        return sorted((path / "previews").glob("*.png"), key=lambda p: p.stat().st_mtime)

    def model(self, rid: str) -> latent.LatentModel:
        """The run's model, loaded once and again when a training run writes a newer checkpoint."""
        path, _ = self.run(rid)
        newest = ckpt.latest(path)
        if rid in self.models and self.models[rid][0] == newest:
            self.models.move_to_end(rid)
            return self.models[rid][1]
        model = latent.open_model(path)
        self.models[rid] = (newest, model)
        while len(self.models) > OPEN_MODELS:
            self.models.popitem(last=False)
        return model

    # Faces.

    def latents(self, rid: str, model: latent.LatentModel, point: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, ...) edit-space latent for {"seed": S} or {"photo": TOKEN} (a photo uploaded to this run), and a
        conditional model's labels (1, K) of it."""
        if not isinstance(point, dict) or len(point) != 1 or not ({"seed", "photo"} & set(point)):
            raise WebError(400, 'a face is {"seed": N} or {"photo": TOKEN}')
        if "seed" in point:
            seed = check_seed(point["seed"])
            return model.latents_of_seeds([seed]), model.labels_of_seeds([seed])
        token = point["photo"]
        if not isinstance(token, str) or token not in self.photos or self.photos[token][0] != rid:
            raise WebError(404, "unknown photo token; upload the photo to this run again")
        return self.photos[token][1], None

    def faces(self, rid: str, seeds_text: str) -> list[dict]:
        try:
            seeds = parse_seeds(seeds_text)
        except ValueError as err:
            raise WebError(400, str(err).replace("--seeds", "seeds")) from None
        if len(seeds) > MAX_FACES:
            raise WebError(400, f"seeds {seeds_text!r} asks for {len(seeds)} faces; at most {MAX_FACES} per request")
        model = self.model(rid)
        images = model.images(model.latents_of_seeds(seeds), model.labels_of_seeds(seeds))
        return [{"seed": seed, "image": png_data_url(image)} for seed, image in zip(seeds, images)]

    def edit(self, rid: str, face: dict, add: dict, remove: list, labels: dict | None = None) -> str:
        labels = labels or {}
        if not isinstance(add, dict) or not isinstance(remove, list) or not isinstance(labels, dict):
            raise WebError(400, 'edit takes {"face": ..., "add": {NAME: STRENGTH}, "remove": [NAME, ...], "set": {NAME: -1|0|1}}')
        model = self.model(rid)
        directions = latent.load_directions(self.run(rid)[0], required=False)
        z, y = self.latents(rid, model, face)
        for name, value in labels.items():  # a conditional model's toggles: the latent stays, the label changes
            if name not in model.condition_names:
                raise WebError(400, f"unknown attribute {str(name)[:40]!r}; this run learnt: {', '.join(model.condition_names) or 'none'}")
            if value not in (-1, 0, 1) or isinstance(value, bool):
                raise WebError(400, f"the label of {name} is -1, 0 or 1, got {value!r}")
            y = y.clone()
            y[:, model.condition_names.index(name)] = float(value)
        if labels and model.space == "w":  # a style model's w holds its labels: the seed's z mapped with the new ones
            z = model.latents_of_seeds([face["seed"]], y)
        for name, strength in add.items():
            if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not abs(strength) <= MAX_STRENGTH:
                raise WebError(400, f"strength of {str(name)[:40]!r} must be a number in [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}], got {strength!r}")
            z = latent.add(z, known_direction(directions, name), float(strength), sphere=model.spherical)
        for name in remove:
            z = latent.remove(z, known_direction(directions, name), sphere=model.spherical)
        return png_data_url(model.images(z, y)[0])

    def interpolate(self, rid: str, a: dict, b: dict, steps: int, slerp: bool) -> list[str]:
        if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= MAX_FRAMES:
            raise WebError(400, f"steps must be a whole number from 2 to {MAX_FRAMES}, got {steps!r}")
        model = self.model(rid)
        (za, ya), (zb, yb) = self.latents(rid, model, a), self.latents(rid, model, b)
        ends = [za, zb]
        points = torch.cat([model.per_layer(end) for end in ends] if any(end.dim() == 3 for end in ends) else ends)  # W+ photo
        labels = None if ya is None else latent.interpolate(torch.cat([ya, yb]), steps)  # a conditional model's labels move too
        frames = model.images(latent.interpolate(points, steps, bool(slerp) and model.spherical), labels)  # w: lerp is natural
        return [png_data_url(frame) for frame in frames]

    def photo(self, rid: str, data: bytes, name: str) -> dict:
        model = self.model(rid)
        try:
            original = load_photo_bytes(data, name, model.resolution, model.crop)[None]
        except ValueError as err:
            raise WebError(400, str(err)) from None
        start = time.perf_counter()
        # An encoder model's own encoder is the answer; a GAN projects (from its trained encoder when it has one).
        z, how = latent.photo_latents(model, original, None if "E" in model.checkpoint.nets else PROJECTION_STEPS)
        reconstruction = model.images(z)
        seconds = time.perf_counter() - start
        mse, psnr = mse_psnr(original, reconstruction)
        token = uuid.uuid4().hex
        self.photos[token] = (rid, z)
        while len(self.photos) > KEPT_PHOTOS:
            self.photos.popitem(last=False)
        return {"token": token, "original": png_data_url(original[0]), "reconstruction": png_data_url(reconstruction[0]),
                "method": how, "mse": float(mse[0]), "psnr": float(psnr[0]), "seconds": round(seconds, 3)}


def check_seed(seed: object) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise WebError(400, f"a seed is a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def known_direction(directions: dict[str, latent.Direction], name: object) -> latent.Direction:
    if not isinstance(name, str) or name not in directions:
        raise WebError(400, f"unknown direction {str(name)[:40]!r}; this run has: {', '.join(directions) or 'none yet'}")
    return directions[name]


def create_app(folders: list[str | Path]):
    """The FastAPI application serving the page, its static files and the JSON API for the given folders."""
    from fastapi import FastAPI, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    explorer = Explorer([Path(f) for f in folders])
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch imports its compiler stack on the first optimizer:
    # seconds that would otherwise land on the first photo upload
    app = FastAPI(title="facegen explorer", docs_url=None, redoc_url=None, openapi_url=None)
    static = Path(str(resources.files("facegen.web") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")

    async def on_worker(function, *args):
        """Run a model computation on the explorer's one worker thread."""
        return await asyncio.get_running_loop().run_in_executor(explorer.worker, function, *args)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(WebError)
    async def refused(_: Request, err: WebError):
        return error(err.status, err.message)

    @app.exception_handler(ValueError)  # facegen's one-line errors (a foreign checkpoint, a missing file ...)
    async def facegen_error(_: Request, err: ValueError):
        return error(400, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException):
        return error(err.status_code, "no such page or API route" if err.status_code == 404 else str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError):
        first = err.errors()[0]
        return error(422, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")

    @app.get("/")
    def page():
        return FileResponse(static / "index.html")

    @app.get("/api/runs")
    def runs():
        return {"runs": [explorer.summary(rid, path, name) for rid, (path, name) in explorer.runs().items()]}

    @app.get("/api/runs/{rid}")
    async def run(rid: str):
        return await on_worker(explorer.detail, rid)

    @app.get("/api/runs/{rid}/curves.png")
    def curves(rid: str):
        path = explorer.run(rid)[0] / "training.png"
        if not path.is_file():
            raise WebError(404, "this run has no training curves yet")
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @app.get("/api/runs/{rid}/previews/{index}")
    def preview(rid: str, index: int):
        previews = explorer.previews(explorer.run(rid)[0])
        if not 0 <= index < len(previews):
            raise WebError(404, f"preview {index} does not exist; this run has {len(previews)}")
        return FileResponse(previews[index], headers={"Cache-Control": "no-store"})

    @app.get("/api/runs/{rid}/faces")
    async def faces(rid: str, seeds: str = "0-15"):
        return {"faces": await on_worker(explorer.faces, rid, seeds)}

    @app.post("/api/runs/{rid}/edit")
    async def edit(rid: str, request: Request):
        body = await json_body(request)
        return {"image": await on_worker(explorer.edit, rid, body.get("face"), body.get("add", {}), body.get("remove", []),
                                         body.get("set", {}))}

    @app.post("/api/runs/{rid}/interpolate")
    async def interpolate(rid: str, request: Request):
        body = await json_body(request)
        frames = await on_worker(explorer.interpolate, rid, body.get("a"), body.get("b"), body.get("steps", 8), body.get("slerp", False))
        return {"frames": frames}

    @app.post("/api/runs/{rid}/photo")
    async def photo(rid: str, request: Request, file: UploadFile = File(...)):
        explorer.run(rid)
        declared = int(request.headers.get("content-length") or 0)
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if declared > MAX_UPLOAD_BYTES + 64 * 1024 or len(data) > MAX_UPLOAD_BYTES:
            raise WebError(413, f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller photo")
        return await on_worker(explorer.photo, rid, data, Path(file.filename or "upload").name[:80])

    return app


async def json_body(request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise WebError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise WebError(400, "the request body must be a JSON object")
    return body


def serve(folders: list[str], host: str = "127.0.0.1", port: int = 7860) -> None:
    """Run the explorer until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError("facegen serve needs the web extra: pip install 'facegen[web]'") from None
    missing = [f for f in folders if not Path(f).exists()]
    if missing:
        raise ValueError(f"{missing[0]} does not exist; pass run directories or folders that hold runs (default runs/)")
    if not 0 < port < 65536:
        raise ValueError(f"--port {port} is not a TCP port; use 1-65535, e.g. 7860")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"facegen: warning: serving on {host}: anyone who can reach this machine can use the explorer", flush=True)
    print(f"facegen explorer on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(create_app(folders), host=host, port=port, log_level="warning")

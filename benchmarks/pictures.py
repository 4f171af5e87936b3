"""The README's pictures (docs/images/) from seeded runs, and docs/pictures.md saying which run made each.

    python benchmarks/pictures.py [--runs runs/pictures] [--demo RUN] [--celeba32 RUN] [--celeba64 RUN] [--vae RUN]
                                  [--data ../shared/data/celeba_subset]

A run not given is trained into --runs with the command docs/pictures.md records (about 70 CPU minutes for all
four on 2 cores; an existing run there is reused). Faces come from fixed seeds of each run's newest checkpoint (its
EMA generator when kept); the VAE's Smiling direction is fitted to the data's labels when the run lacks it. The
explorer's screenshot needs Debian's chromium and chromium-driver with selenium (the test extra); without them the
old screenshot stays and a warning says so. Regenerate when the models change; keep the set under 1 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_speed import machine  # noqa: E402

from facegen import checkpoint as ckpt  # noqa: E402
from facegen.cli import main as facegen  # noqa: E402
from facegen.images import save_grid  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "celeba_subset"
IMAGES = ROOT / "docs" / "images"
PAGE = ROOT / "docs" / "pictures.md"
MAX_BYTES = 1_000_000
SEEDS = range(18)  # three rows of six faces


def training_commands(data: Path, runs: Path) -> dict[str, list[str]]:
    """How each missing run is trained: the `facegen` arguments docs/pictures.md records."""
    return {
        "demo": ["demo", "--out", str(runs / "demo"), "--quiet"],
        "celeba32": ["train", "--preset", "fast32", "--data", str(data), "--set", "data.ada_target=0.6", "--minutes", "45",
                     "--out", str(runs / "celeba32"), "--quiet"],
        "celeba64": ["train", "--preset", "fast64", "--data", str(data), "--minutes", "10", "--out", str(runs / "celeba64"), "--quiet"],
        "vae": ["train", "--preset", "vae64", "--data", str(data), "--minutes", "10", "--out", str(runs / "vae"), "--quiet"],
    }


def run_facegen(*argv: str) -> None:
    if facegen(list(argv)) != 0:
        raise SystemExit(f"facegen {' '.join(argv)} failed")


def faces_grid(run: Path, out: Path, zoom: int) -> None:
    from facegen.sample import sample_seeds

    G, _ = ckpt.load_generator(run)
    save_grid(sample_seeds(G, list(SEEDS)), out, nrow=6, zoom=zoom)


def reconstructions(run: Path, out: Path) -> None:
    run_facegen("reconstruct", str(run), "--holdout", "6", "--out", str(out), "--zoom", "1", "--quiet")


def smile_walk(run: Path, out: Path) -> None:
    from facegen.latent import load_directions

    if "Smiling" not in load_directions(run, required=False):
        run_facegen("directions", str(run), "--from-labels", "Smiling", "--quiet")
    with tempfile.TemporaryDirectory() as folder:
        run_facegen("edit", str(run), "--seeds", "0-2", "--walk", "Smiling", "--range=-3,3", "--steps", "6", "--zoom", "1",
                    "--out", folder)
        shutil.copyfile(Path(folder) / "walk-Smiling.png", out)


def explorer_screenshot(runs: list[Path], out: Path) -> bool:
    """The explorer on these runs: the VAE's faces, one focused and smiled at. False when no browser is installed."""
    from facegen.web.browser import LOADED_IMAGES, chromium_paths, explorer_in_background, headless_chromium

    if not all(chromium_paths()):
        print("warning: no chromium/chromedriver; the explorer's screenshot is left as it is", file=sys.stderr)
        return False
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with explorer_in_background(runs) as url, headless_chromium(1280, 900) as driver:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")) == len(runs))
        next(r for r in driver.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr") if r.text.startswith(runs[0].name)).click()
        wait.until(lambda d: d.find_element(By.ID, "run-title").text == runs[0].name)
        driver.find_element(By.ID, "explore-this").click()
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#faces img") == 16)
        driver.find_elements(By.CSS_SELECTOR, "#faces figure")[1].click()
        wait.until(lambda d: d.execute_script(LOADED_IMAGES, "#focus-image") == 1)
        before = driver.find_element(By.ID, "focus-image").get_attribute("src")
        slider = driver.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]")[0]
        driver.execute_script("arguments[0].value = 3; arguments[0].dispatchEvent(new Event('input'))", slider)
        wait.until(lambda d: d.find_element(By.ID, "focus-image").get_attribute("src") != before)
        time.sleep(1)
        with tempfile.TemporaryDirectory() as folder:
            driver.save_screenshot(f"{folder}/shot.png")
            shot = Image.open(f"{folder}/shot.png").convert("RGB")
            shot.resize((800, round(800 * shot.height / shot.width)), Image.LANCZOS).save(out, optimize=True)
    return True


def describe_run(run: Path, how: str) -> str:
    state = ckpt.read_state(run)
    minutes = state.get("train_seconds", 0.0) / 60
    return f"`{run}`: {how}; {state['step']:,} steps in {minutes:.1f} minutes of training"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/pictures"), help="where missing runs are trained")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--note", default="", help="a line for docs/pictures.md, e.g. what else ran on the machine")
    for name in ("demo", "celeba32", "celeba64", "vae"):
        parser.add_argument(f"--{name}", type=Path, help=f"an existing run for the {name} pictures (default: train one)")
    args = parser.parse_args()
    commands = training_commands(args.data, args.runs)
    runs: dict[str, Path] = {}
    for name, command in commands.items():
        given = getattr(args, name)
        runs[name] = given or args.runs / name
        if given is None and not (runs[name] / "checkpoints").is_dir():
            run_facegen(*command)

    IMAGES.mkdir(parents=True, exist_ok=True)
    faces_grid(runs["demo"], IMAGES / "demo.png", 2)
    faces_grid(runs["celeba32"], IMAGES / "celeba32.png", 2)
    faces_grid(runs["celeba64"], IMAGES / "celeba64.png", 1)
    reconstructions(runs["vae"], IMAGES / "vae-reconstructions.png")
    smile_walk(runs["vae"], IMAGES / "edit-smiling.png")
    shot = explorer_screenshot([runs["vae"], runs["celeba32"]], IMAGES / "explorer.png")

    total = sum(p.stat().st_size for p in IMAGES.glob("*.png"))
    info = machine()
    described = {name: describe_run(runs[name], f"given with `--{name}`" if getattr(args, name) else
                                    f"`facegen {' '.join(a for a in commands[name] if a != '--quiet')}`") for name in runs}
    rows = [
        ("demo.png", "seeds 0-17 of the demo", described["demo"]),
        ("celeba32.png", "seeds 0-17, CelebA at 32 px", described["celeba32"]),
        ("celeba64.png", "seeds 0-17, CelebA at 64 px", described["celeba64"]),
        ("vae-reconstructions.png", "the first 6 held-out faces above their reconstructions "
         "(`facegen reconstruct RUN --holdout 6`)", described["vae"]),
        ("edit-smiling.png", "seeds 0-2 walked along the Smiling direction fitted to the data's labels, -3 to 3 spreads "
         "(`facegen directions RUN --from-labels Smiling`, `facegen edit RUN --seeds 0-2 --walk Smiling`)", described["vae"]),
        ("explorer.png", "`facegen serve` on the VAE and CelebA 32 px runs: a face focused, its Smiling slider at 3"
         + ("" if shot else " (not retaken this time: no browser)"), described["vae"]),
    ]
    page = ["# The README's pictures", "",
            "Written by `python benchmarks/pictures.py` (" + time.strftime("%Y-%m-%d") + f"; {info['cpu']}, {info['cores']} cores, "
            f"avx512_bf16: {info['avx512_bf16']}, torch {info['torch']}); {total / 1e6:.2f} MB in all.", "",
            *([args.note, ""] if args.note else []),
            "| picture | what | run |", "| --- | --- | --- |"]
    page += [f"| [{name}](images/{name}) | {what} | {run} |" for name, what, run in rows]
    PAGE.write_text("\n".join(page) + "\n")
    print(json.dumps({p.name: p.stat().st_size for p in sorted(IMAGES.glob("*.png"))}, indent=1))
    if total > MAX_BYTES:
        raise SystemExit(f"the pictures take {total / 1e6:.2f} MB; keep them under {MAX_BYTES / 1e6:.0f} MB (fewer seeds, no zoom)")
    print(f"wrote {IMAGES} ({total / 1e6:.2f} MB) and {PAGE}")


if __name__ == "__main__":
    main()

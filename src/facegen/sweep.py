"""Sweeps: every combination of a few config values, trained one after another, each in its own run
directory; a sweep stopped at any moment (even by SIGKILL) continues the run it was in and skips the
finished ones. The sweep's own state is `sweep.json` in its folder, rewritten atomically after each run.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from facegen import checkpoint as ckpt
from facegen.config import SECTIONS, Config, load_config
from facegen.files import write_text_atomic

MANIFEST = "sweep.json"
WALL_SECONDS = "wall_seconds.txt"  # 'name seconds' lines, read by the compare page


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep trains: a preset or TOML file, fixed overrides, the varied keys and the run length."""

    preset: str | None
    config: str | None
    fixed: tuple[str, ...]  # --data and --set as 'section.key=value'
    vary: tuple[tuple[str, tuple[str, ...]], ...]  # (key, values as written)
    length: tuple[str, ...]  # train.steps / train.epochs / train.minutes overrides


@dataclass(frozen=True)
class SweepRun:
    name: str  # the run directory's name, made from the settings
    settings: tuple[str, ...]  # 'section.key=value' overrides of this combination


def split_values(text: str) -> list[str]:
    """'32,64' -> ['32', '64']; commas inside brackets stay ('[0.5, 0.9],[0.0, 0.99]' is two values)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return values


def parse_vary(text: str) -> tuple[str, tuple[str, ...]]:
    """'train.lr_g=1e-4,2e-4' -> ('train.lr_g', ('1e-4', '2e-4')), or a one-line error."""
    key, sep, raw = (part.strip() for part in text.partition("="))
    section, dot, name = key.partition(".")
    if not sep or not dot or not section or not name:
        raise ValueError(f"--vary {text!r} must look like section.key=v1,v2, e.g. --vary train.batch_size=32,64")
    if section not in SECTIONS:
        raise ValueError(f"--vary {text!r}: unknown config section {section!r}; valid sections: {', '.join(SECTIONS)}")
    values = split_values(raw)
    if not raw or any(not v for v in values):
        raise ValueError(f"--vary {key}= needs a list of values separated by commas with none empty, e.g. --vary {key}=1,2")
    if len(set(values)) != len(values):
        raise ValueError(f"--vary {key} lists a value twice ({raw}); give each value once")
    return key, tuple(values)


def plan(spec: SweepSpec) -> list[tuple[SweepRun, Config]]:
    """Every combination with its validated config: all are checked before any run starts."""
    keys = [key for key, _ in spec.vary]
    if not keys:
        raise ValueError("a sweep needs at least one --vary section.key=v1,v2")
    if len(set(keys)) != len(keys):
        raise ValueError(f"--vary names {next(k for k in keys if keys.count(k) > 1)} twice; list all its values in one --vary")
    fixed_keys = {text.partition("=")[0].strip() for text in spec.fixed + spec.length}
    if clash := fixed_keys.intersection(keys):
        raise ValueError(f"{sorted(clash)[0]} is both varied and set; drop it from --set (or --data/--steps/--epochs/--minutes)")
    short = [key.partition(".")[2] for key in keys]  # 'train.lr_g' -> 'lr_g' unless two sections share the name
    labels = [s if short.count(s) == 1 else key for s, key in zip(short, keys)]
    planned, names = [], set()
    for values in itertools.product(*(values for _, values in spec.vary)):
        settings = tuple(f"{key}={value}" for key, value in zip(keys, values))
        name = "_".join(f"{label}={_path_safe(value)}" for label, value in zip(labels, values))
        if name in names:
            raise ValueError(f"two combinations would share the run directory {name!r}; write the values differently")
        names.add(name)
        try:
            cfg = load_config(spec.preset, spec.config, [*spec.fixed, *settings, *spec.length])
        except ValueError as err:
            raise ValueError(f"sweep run {name}: {err}") from None
        planned.append((SweepRun(name, settings), cfg))
    return planned


def _path_safe(value: str) -> str:
    """A value as part of a directory name: '[0.5, 0.9]' -> '0.5-0.9', 'color,translation' -> 'color-translation'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", value).strip("-") or "empty"


def run_sweep(spec: SweepSpec, out: str | Path, evaluate: tuple[str, ...] = (), n_eval: int = 2000,
              progress: bool = True, extractor=None) -> list[Path]:
    """Train (and score, when `evaluate` names metrics) every combination into out/NAME; returns the run folders."""
    from facegen.train import train

    out = Path(out)
    planned = plan(spec)
    manifest = _open_manifest(out, spec, [run for run, _ in planned])
    paths = []
    for i, (run, cfg) in enumerate(planned, 1):
        path = out / run.name
        paths.append(path)
        if run.name in manifest["finished"]:
            print(f"sweep {i}/{len(planned)}: {run.name} finished earlier, skipped")
            continue
        resume = ckpt.latest(path) is not None
        if not resume and path.exists():  # stopped before its first checkpoint: nothing there to continue
            shutil.rmtree(path)
        print(f"sweep {i}/{len(planned)}: {run.name}" + (" (resuming)" if resume else ""))
        train(cfg, path, resume=resume, progress=progress, origin={"preset": spec.preset, "sweep": str(out), "settings": list(run.settings)})
        if evaluate:
            from facegen.evaluate import evaluate_run, format_results

            print(format_results(evaluate_run(path, evaluate, n_eval, extractor=extractor, progress=progress)))
        manifest["finished"].append(run.name)
        manifest["seconds"][run.name] = ckpt.read_state(path).get("train_seconds")
        _write_manifest(out, manifest)
    return paths


def _open_manifest(out: Path, spec: SweepSpec, runs: list[SweepRun]) -> dict:
    """The sweep's state: new, or the one a stopped sweep left, which must describe the same sweep."""
    path = out / MANIFEST
    described = {"spec": json.loads(json.dumps(asdict(spec))), "runs": [run.name for run in runs]}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); move it away to start the sweep again") from None
        if manifest.get("spec") != described["spec"]:
            raise ValueError(f"{out} holds another sweep (its {MANIFEST} has other settings); give the same arguments "
                             "to continue it, or another --out")
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    manifest = {**described, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "finished": [], "seconds": {}}
    _write_manifest(out, manifest)
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    lines = "".join(f"{name} {seconds:.1f}\n" for name, seconds in manifest["seconds"].items() if seconds is not None)
    write_text_atomic(out / WALL_SECONDS, lines)

"""The training progress bar, counting what bounds the run: minutes under a wall-clock budget (`--minutes`), epochs
under an epoch budget, steps under `--steps`, so that its count and its ETA are the run's own (a minutes-bounded
demo once showed "942/13900000 steps" and an ETA of hundreds of hours)."""

from __future__ import annotations

from tqdm import tqdm

FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} {unit} [{elapsed}<{remaining}{postfix}]"


class TrainProgress:
    """A tqdm bar in minutes, epochs or steps; `advance` is told the step and the training seconds so far."""

    def __init__(self, minutes: float | None, steps: int | None, epochs: int, steps_per_epoch: int, step: int,
                 seconds: float, enabled: bool = True) -> None:
        if minutes:
            self.unit, total = "min", minutes
        elif steps:
            self.unit, total = "steps", steps
        else:
            self.unit, total = "epochs", epochs
        self.steps_per_epoch = steps_per_epoch
        self.bar = tqdm(total=total, initial=self._count(step, seconds), desc="train", unit=self.unit, disable=not enabled,
                        bar_format=None if self.unit == "steps" else FORMAT)

    def _count(self, step: int, seconds: float) -> float:
        return {"min": seconds / 60, "steps": step, "epochs": step / self.steps_per_epoch}[self.unit]

    def advance(self, step: int, seconds: float) -> None:
        self.bar.update(min(self._count(step, seconds), self.bar.total) - self.bar.n)  # tqdm redraws a few times a second

    def set_postfix(self, values: dict, **more) -> None:
        self.bar.set_postfix(values, **more)

    def close(self) -> None:
        self.bar.close()

"""The training bar counts what bounds the run: minutes, epochs or steps."""

import pytest

from facegen.progress import TrainProgress


@pytest.mark.parametrize("budget, step, seconds, unit, count, total", [
    ({"minutes": 2.75, "steps": None, "epochs": 100000}, 942, 30.0, "min", 0.5, 2.75),  # the demo: not 942/13900000 steps
    ({"minutes": None, "steps": 500, "epochs": 5}, 120, 9.0, "steps", 120, 500),
    ({"minutes": None, "steps": None, "epochs": 5}, 250, 9.0, "epochs", 2.5, 5),
])
def test_the_bar_counts_the_budget_that_bounds_the_run(budget, step, seconds, unit, count, total):
    progress = TrainProgress(budget["minutes"], budget["steps"], budget["epochs"], steps_per_epoch=100, step=0, seconds=0.0)
    progress.advance(step, seconds)
    assert (progress.bar.unit, progress.bar.total) == (unit, total) and progress.bar.n == pytest.approx(count)
    shown = str(progress.bar)
    assert f"{count:.1f}/{total:.1f} {unit}" in shown if unit != "steps" else f"{count}/{total}" in shown
    progress.close()


def test_a_resumed_run_starts_where_its_budget_stood_and_never_passes_it():
    progress = TrainProgress(10.0, None, 100000, steps_per_epoch=100, step=5000, seconds=300.0)
    assert progress.bar.n == pytest.approx(5.0)
    progress.advance(9000, 700.0)  # a last step that ends past the budget
    assert progress.bar.n == pytest.approx(10.0)
    progress.close()

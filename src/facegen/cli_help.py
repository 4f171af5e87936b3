"""`facegen --help` grouped by what a user wants to do, and an example at the end of every command's help.

The examples are real command lines: tests/test_docs.py parses each one, and the README's command table lists
the same commands, so the help, the README and the parser cannot drift apart.
"""

from __future__ import annotations

import argparse

GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("prepare",),
    "train": ("demo", "train", "sweep", "presets"),
    "look": ("sample", "runs", "compare", "interpolate", "mix", "reconstruct", "latent-plot"),
    "edit": ("directions", "edit", "train-encoder"),
    "measure": ("evaluate", "judge"),
    "serve": ("serve",),
}

EXAMPLES: dict[str, str] = {
    "prepare": "facegen prepare ../shared/data/celeba_subset --resolution 32",
    "demo": "facegen demo",
    "train": "facegen train --preset fast32 --data ../shared/data/celeba_subset --minutes 10",
    "sweep": "facegen sweep --preset fast32 --data ../shared/data/celeba_subset --vary train.lr_g=2e-4,5e-4 --minutes 5 --out runs/sweep",
    "presets": "facegen presets",
    "sample": "facegen sample runs/fast32 --n 64 --grid faces.png",
    "runs": "facegen runs runs --sort kid",
    "compare": "facegen compare runs/fast32 runs/dcgan32 --out runs/compare",
    "interpolate": "facegen interpolate runs/fast32 --seeds 3,17,42 --steps 8 --slerp --out walk.gif",
    "mix": "facegen mix runs/style32 --rows 0-3 --columns 4-9 --out mix.png",
    "reconstruct": "facegen reconstruct runs/vae64 --holdout 16 --out recon.png",
    "latent-plot": "facegen latent-plot runs/vae64 --attribute Smiling --out smiling.png",
    "directions": "facegen directions runs/fast32 --from-labels Smiling Male --judge runs/judge",
    "edit": "facegen edit runs/fast32 --seeds 0-7 --add Smiling=2 --out edits",
    "train-encoder": "facegen train-encoder runs/fast32",
    "evaluate": "facegen evaluate runs/fast32 --n 2000",
    "judge": "facegen judge train ../shared/data/celeba_subset --out runs/judge --resolution 32",
    "serve": "facegen serve runs",
}


def command_table(helps: dict[str, str]) -> str:
    """The commands by group, each with its one-line help, for `facegen --help`."""
    width = max(map(len, helps))
    lines = []
    for group, commands in GROUPS.items():
        lines.append(f"  {group}")
        lines += [f"    {name:{width}s}  {helps[name]}" for name in commands]
    return "\n".join(lines)


def decorate(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """Group the command list in the top-level help and end every command's help with its example."""
    grouped = {name for names in GROUPS.values() for name in names}
    unlisted = sorted(set(sub.choices) - (grouped & set(EXAMPLES)))
    if unlisted:
        raise RuntimeError(f"every command needs a group and an example in cli_help.py; missing: {', '.join(unlisted)}")
    helps = {action.dest: action.help for action in sub._choices_actions}
    sub._choices_actions.clear()  # argparse's flat list of commands; the grouped table below replaces it
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (f"commands:\n{command_table(helps)}\n\nexample:\n  {EXAMPLES['train']}\n\n"
                     "`facegen COMMAND --help` lists a command's options.")
    for name, command in sub.choices.items():
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.epilog = f"example:\n  {EXAMPLES[name]}"

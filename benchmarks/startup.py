"""How long the command line takes to start, against ``python -c "import torch"`` in the same run.

Each command runs as a fresh process ``--repeat`` times, interleaved with the others (so drift on
a shared machine hits all alike); the figures are medians of the wall time and of the child's CPU
time (user + system, from ``getrusage``), and each command's ratio to importing torch. Run it
with bytecode compiled (``UV_COMPILE_BYTECODE=1 uv sync`` or ``python -m compileall``), as an
installed toolkit is.

    uv run python benchmarks/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DLTK = str(Path(sys.executable).parent / "dltk")
COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "dltk --help": [DLTK, "--help"],
    "dltk run --help": [DLTK, "run", "--help"],
    "dltk list": [DLTK, "list"],
    "dltk plugins": [DLTK, "plugins"],
    "dltk check recipes/dcgan_cifar10.toml": [DLTK, "check", str(ROOT / "recipes" / "dcgan_cifar10.toml")],
}


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the file cache once
        timed(command)
    for _ in range(args.repeat):
        for name, command in COMMANDS.items():
            wall, cpu = timed(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    torch_wall = statistics.median(walls['python -c "import torch"'])
    torch_cpu = statistics.median(cpus['python -c "import torch"'])
    print(f"| command | wall (median of {args.repeat}) | CPU | wall / import torch | CPU / import torch |")
    print("|---|---|---|---|---|")
    for name in COMMANDS:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"| `{name}` | {wall:.3f} s | {cpu:.3f} s | {wall / torch_wall:.3f} | {cpu / torch_cpu:.3f} |")


if __name__ == "__main__":
    main()

"""Characters per second of ``dltk generate`` on a trained language model, with the key/value cache
(the default) and without it (``--no-cache``: the model reads its whole window again for every
character), and whether both write the same text for the same seed.

Each way is timed as the CPU seconds of two ``dltk generate`` processes, one drawing ``--num-chars``
characters and one drawing a single character: their difference is the cost of the characters
alone, without the start-up (imports, loading the checkpoint). CPU time, not wall time, so that
other work on the machine does not inflate it (one torch thread: ``OMP_NUM_THREADS=1``).

    uv run python benchmarks/generate_cache.py RUN_DIR [--num-chars 1000] [--seed 0] [--prompt TEXT]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def generate(run: Path, out: Path, num_chars: int, seed: int, prompt: str, cache: bool) -> tuple[float, str]:
    """CPU seconds of one ``dltk generate`` process, and the text it wrote."""
    command = [str(Path(sys.executable).parent / "dltk"), "generate", str(run), "--out", str(out)]
    command += ["--num-chars", str(num_chars), "--seed", str(seed), "--prompt", prompt, "--device", "cpu"]
    command += [] if cache else ["--no-cache"]
    before = child_cpu()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return child_cpu() - before, (out / "sample.txt").read_text(encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--num-chars", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", default="\n")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cache in (True, False):
            name = "cache" if cache else "no-cache"
            one, _ = generate(args.run, Path(tmp) / f"{name}-1", 1, args.seed, args.prompt, cache)
            many, text = generate(args.run, Path(tmp) / f"{name}-n", args.num_chars, args.seed, args.prompt, cache)
            seconds = max(many - one, 1e-9)
            results[name] = (seconds, text)
            rate = args.num_chars / seconds
            print(
                f"{name:9s} {args.num_chars} characters: {seconds:.2f} s CPU ({rate:.0f} chars/s); start-up {one:.2f} s"
            )
    (with_cache, text_a), (without, text_b) = results["cache"], results["no-cache"]
    print(f"speed-up of the cache: {without / with_cache:.1f}x; same text: {text_a == text_b}")


if __name__ == "__main__":
    main()

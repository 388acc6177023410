"""Characters per second of ``dltk generate`` on a trained language model, with the key/value cache
(the default) and without it (``--no-cache``: the model reads its whole window again for every
character, as nanoGPT's ``generate`` does), and whether both write the same text for the same seed.

The run is loaded once, in this process, and each way is timed around the very function ``dltk
generate`` calls (the run's ``generate``: drawing the characters and writing ``sample.txt``), as
process CPU time with one torch thread: start-up (imports, loading the checkpoint) is left out, and
other work on the machine does not inflate it as it does wall time. Each way runs ``--repeats``
times, alternating; the median is reported.

    uv run python benchmarks/generate_cache.py RUN_DIR [--num-chars 1000] [--seed 0] [--prompt TEXT]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path, help="a run folder, a checkpoint or an export of a language model")
    parser.add_argument("--num-chars", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from dltoolkit._generate import checkpoint_of, load_trained
    from dltoolkit._manager import make_plugin_host
    from dltoolkit._registry import Registry

    source = checkpoint_of(args.run) if args.run.is_dir() else args.run
    trained, meta, _path = load_trained(Registry(make_plugin_host([])), source, "cpu")
    if trained.generate is None:
        raise SystemExit(f"{args.run}: its recipe ({meta.get('recipe')}) does not generate text")
    seconds: dict[str, list[float]] = {"cache": [], "no-cache": []}
    texts: dict[str, set[str]] = {"cache": set(), "no-cache": set()}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name in seconds:
                out = Path(tmp) / f"{name}-{repeat}"
                out.mkdir()
                start = time.process_time()
                (path,) = trained.generate(
                    out, seed=args.seed, prompt=args.prompt, num_chars=args.num_chars, no_cache=name == "no-cache"
                )
                seconds[name].append(time.process_time() - start)
                texts[name].add(path.read_text(encoding="utf-8"))
    for name, times in seconds.items():
        median = statistics.median(times)
        shown = ", ".join(f"{t:.2f}" for t in times)
        rate = args.num_chars / median
        print(f"{name:9s} {args.num_chars} characters: {median:.2f} s CPU ({rate:.0f} chars/s); runs {shown}")
    same = len(texts["cache"] | texts["no-cache"]) == 1
    speed_up = statistics.median(seconds["no-cache"]) / statistics.median(seconds["cache"])
    print(f"speed-up of the cache: {speed_up:.1f}x; same text every time: {same}")


if __name__ == "__main__":
    main()

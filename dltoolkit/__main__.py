"""``python -m dltoolkit`` is ``dltk`` (what ``torchrun ... -m dltoolkit run RECIPE`` starts on each rank)."""

if __name__ == "__main__":  # not again in the processes ``--nproc-per-node`` spawns
    from dltoolkit.cli import console_main

    console_main()

"""dltoolkit-optuna: ``dltk sweep``, hyperparameter search over any recipe key (docs/sweeps.md)."""

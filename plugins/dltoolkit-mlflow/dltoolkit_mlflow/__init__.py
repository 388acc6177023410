"""dltoolkit-mlflow: the ``mlflow`` writer (docs/tracking.md)."""

"""Can the study's database be opened? Checked before anything is written."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

TIMEOUT = 5


def storage_problem(url: str, *, default_folder: Path | None = None) -> str | None:
    """What is wrong with the storage URL, in a few words (None: it opens). ``default_folder``: the
    sweep's own folder, made later, where the default database goes."""
    scheme = urlparse(url).scheme.lower()
    if not scheme or "://" not in url:
        return f"'{url}' is not a database URL (sqlite:///FILE.db, postgresql://USER:PASSWORD@HOST/DB)"
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
            return f"'{url}' is not a SQLite file URL (sqlite:///relative.db or sqlite:////absolute/path.db)"
        path = Path(url[len("sqlite:///") :])
        if path.is_dir():
            return f"{path} is a folder, not a database file"
        if default_folder is not None and path.parent == default_folder:
            return None  # the sweep's folder, made when the sweep starts
        if not path.parent.is_dir():
            return f"folder {path.parent} does not exist"
        if path.exists():
            import sqlite3

            try:
                connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=TIMEOUT)
                try:
                    connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
                finally:
                    connection.close()
            except sqlite3.Error as exc:
                return f"cannot open {path} as a database ({exc})"
        return None
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
    except ModuleNotFoundError as exc:
        return f"the driver for {scheme} is not installed ({exc.name}; for PostgreSQL: pip install psycopg2-binary)"
    except Exception as exc:
        text = " ".join(str(exc).split("\n")[0].split())
        return f"cannot open {url} ({type(exc).__name__}: {text})"
    return None

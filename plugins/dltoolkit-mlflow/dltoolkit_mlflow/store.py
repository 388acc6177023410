"""Can the tracking store be opened? Checked before a run starts (``dltk check`` and ``dltk run``),
without importing MLflow and without writing anything: a bad URI, a database that is locked or is
not a database, a folder that does not exist or a server that does not answer is one line naming
``writers.N.tracking_uri``."""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DATABASES = ("postgresql", "mysql", "mssql", "oracle")
"""URI schemes of database servers (with an optional ``+driver``), opened with SQLAlchemy."""

SCHEMES = "sqlite:///FILE.db, http(s)://HOST:PORT, postgresql://USER@HOST/DB, mysql://..., file:///FOLDER"
TIMEOUT = 5.0
"""Seconds to wait for a server or a locked database."""


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for an in-memory database)."""
    rest = uri[len("sqlite://") :]
    if rest in ("", "/", "/:memory:"):
        return None
    return Path(rest[1:] if rest.startswith("/") else rest).expanduser()


def store_problem(uri: str) -> str | None:
    """What is wrong with the tracking store at ``uri``, in a few words; None when it opens."""
    uri = uri.strip()
    scheme = urlparse(uri).scheme.lower()
    if not uri or not scheme or (len(scheme) == 1 and os.name == "nt"):
        return f"'{uri}' is not a tracking URI (give one of {SCHEMES})"
    if scheme == "sqlite":
        return _sqlite_problem(uri)
    if scheme in ("http", "https"):
        return _server_problem(uri)
    if scheme.split("+")[0] in DATABASES:
        return _database_problem(uri)
    if scheme == "file":
        folder = Path(urlparse(uri).path)
        parent = folder if folder.exists() else folder.parent
        if not parent.is_dir():
            return f"folder {parent} does not exist"
        return None
    if scheme in ("databricks", "databricks-uc"):
        return None  # its own credentials; checked by MLflow when the run starts
    return f"'{uri}' is not a tracking URI MLflow can open (give one of {SCHEMES})"


def _sqlite_problem(uri: str) -> str | None:
    if not uri.startswith("sqlite:///") and uri != "sqlite://":
        return f"'{uri}' is not a SQLite URI (sqlite:///relative.db or sqlite:////absolute/path.db)"
    path = sqlite_path(uri)
    if path is None:
        return "an in-memory database keeps nothing after the run (give sqlite:///FILE.db)"
    if path.is_dir():
        return f"{path} is a folder, not a database file"
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            return f"folder {folder} does not exist (the database {path.name} would be made there)"
        if not os.access(folder, os.W_OK):
            return f"folder {folder} is not writable (the database {path.name} would be made there)"
        return None
    try:  # read-write, never created here; a lock held by another writer is refused after TIMEOUT
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=TIMEOUT)
    except sqlite3.Error as exc:
        return f"cannot open database {path} ({exc})"
    try:
        connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        connection.execute("BEGIN IMMEDIATE")  # takes the write lock, or says who holds it
        connection.rollback()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return f"database {path} is locked by another process (waited {TIMEOUT:g} s)"
        return f"cannot use database {path} ({exc})"
    except sqlite3.DatabaseError as exc:
        return f"{path} is not a SQLite database ({exc})"
    finally:
        connection.close()
    return None


def _server_problem(uri: str) -> str | None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            if response.status >= 400:
                return f"the tracking server at {uri} answered {response.status}"
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # an older server without /health: it answers, which is what matters
            return None
        return f"the tracking server at {uri} answered {exc.code} ({exc.reason})"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach the tracking server at {uri} ({reason})"
    return None


def _database_problem(uri: str) -> str | None:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(TIMEOUT)})
        with engine.connect():
            pass
    except ModuleNotFoundError as exc:
        return f"the driver for {uri.split('://')[0]} is not installed ({exc.name}; e.g. pip install psycopg2-binary)"
    except Exception as exc:
        text = " ".join(str(exc).split("\n")[0].split())
        return f"cannot open the database ({type(exc).__name__}: {text})"
    return None


def check_store(config: Any, where: str, stage: str) -> list[str]:
    """The writer's check (``dltk check`` and each run's start): the store must open."""
    problem = store_problem(config.tracking_uri)
    return [f"{where}.tracking_uri: {problem}"] if problem else []

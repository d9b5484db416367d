"""Which registry databases custody can open, checked when the config is read."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg")}
URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"


def database_url_problem(url: str) -> str:
    """Why custody cannot open `url`, or ''. Checked when the config is read, so a wrong URL is one
    line naming the key instead of a driver's traceback; never echoes the URL, which may hold a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"not a database URL; expected {URL_FORMS}"
    backend, driver = parsed.get_backend_name(), parsed.drivername.partition("+")[2]
    if driver not in SUPPORTED_DRIVERS.get(backend, ()):
        return f"{parsed.drivername} is not supported; expected {URL_FORMS}"
    return ""

"""`syncworker demo` needs nothing running: no Postgres, no Redis, no credentials.

It runs as a subprocess with every SYNCWORKER_* variable removed and the database, broker and
Redis pointed at addresses where nothing answers: the demo must set them aside and still run
the real Celery machinery to convergence on its embedded SQLite database.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

NOWHERE = {
    "SYNCWORKER_DATABASE_URL": "postgresql://nobody:wrong@127.0.0.1:9/nowhere",
    "SYNCWORKER_BROKER_URL": "redis://127.0.0.1:9/0",
    "SYNCWORKER_REDIS_URL": "redis://127.0.0.1:9/0",
}


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNCWORKER_")}
    env.update(NOWHERE, COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-c", "from syncworker.cli import main; main()", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_demo_converges_on_the_embedded_default_with_nothing_running(tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite3"

    result = run_demo("--cases", "5", "--tickets", "5", "--rounds", "2", "--keep-db", str(database))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "CONVERGED: 10 linked pairs" in result.stdout, output
    assert "NOT CONVERGED" not in result.stdout
    for name in NOWHERE:
        assert name in result.stdout, f"the demo should say it ignores {name}"
    assert "5 Salesforce → Zenvia, 5 Zenvia → Salesforce" in result.stdout  # records created
    with sqlite3.connect(database) as db:
        links = db.execute("SELECT count(*) FROM links WHERE crm_id IS NOT NULL").fetchone()[0]
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert links == 10
    assert revision, "the demo database is migrated by Alembic"
    log = database.with_suffix(".log").read_text()
    assert '"syncworker.tasks"' in log, "the worker's structured log goes next to the database"


def test_the_demo_refuses_to_reuse_a_database(tmp_path: Path) -> None:
    existing = tmp_path / "old.sqlite3"
    existing.write_bytes(b"")

    result = run_demo("--cases", "1", "--tickets", "1", "--keep-db", str(existing))

    assert result.returncode == 2
    assert "exists" in result.stderr

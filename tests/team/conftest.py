"""A real PostgreSQL for the team tests: Debian's PostgreSQL programs, a fresh cluster on 127.0.0.1, stopped after.

The cluster lives in a temporary folder the `postgres` user can reach (PostgreSQL refuses to run as root, so under
root `mlops_wb.server.start_postgres` runs it as `postgres`). It listens on a free port on 127.0.0.1 only, has one
role with a password and one database, and is stopped with `pg_ctl stop -m fast` at the end of the session.
If PostgreSQL is not installed the tests fail (the README's test command installs it): they never skip.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres():
    "A running `LocalPostgres` (see `mlops_wb.server.start_postgres`); its `.uri` holds the password."
    from mlops_wb.core import MlopsWbError
    from mlops_wb.server import start_postgres, stop_postgres

    folder = Path(tempfile.mkdtemp(prefix="mlops_wb_pg_"))
    folder.chmod(0o755)  # the postgres user must reach the cluster inside
    try:
        try:
            pg = start_postgres(folder)
        except MlopsWbError as e:
            pytest.fail(f"Could not start a PostgreSQL for the team tests: {e}\n"
                        "The README's test command (`make test`) installs Debian's `postgresql` package; "
                        "install it with `apt-get install postgresql` to run these tests alone.", pytrace=False)
        yield pg
    finally:
        stop_postgres(folder, remove=True)
        shutil.rmtree(folder, ignore_errors=True)
        assert not (folder / "postgres").exists()


@pytest.fixture
def project(tmp_path):
    "An empty project folder with a settings.ini of its own (so nothing walks up into the repository's)."
    # the tests play a team (ds0..ds3) from one machine on a plain MLflow server: declared names are allowed here
    (tmp_path / "settings.ini").write_text("[tracking]\nexperiment = team\n[approval]\napprovers = ds0, ds1, ds2, ds3\n"
                                           "four_eyes = true\nallow_declared_user = true\n")
    return tmp_path


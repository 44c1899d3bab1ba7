"""A throwaway Postgres cluster for the tests: ``initdb`` + ``pg_ctl`` in a temp dir.

It listens on 127.0.0.1 only, on a free port, runs as the ``postgres`` user when the
tests run as root, and is removed afterwards. ``fsync=off`` for speed; the restart test
turns it back on (:meth:`PgCluster.restart`). Roles: ``ps_writer`` owns each test
database; ``ps_reader`` may only SELECT (what docs/team.md recommends for queries).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["PgCluster", "find_pg_bin"]


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (Debian: /usr/lib/postgresql/N/bin)."""
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")):
            return Path(cand)
    found = shutil.which("initdb")
    return None if found is None else Path(found).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One cluster; ``database()`` makes a fresh database with its two roles' grants."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="promptstate-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start(fsync=False)
        self.psql(
            "postgres",
            "CREATE ROLE ps_writer LOGIN; CREATE ROLE ps_reader LOGIN;",
        )

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self, *, fsync: bool) -> None:
        """Start the server (``fsync`` as asked) and wait until it accepts connections."""
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync={'on' if fsync else 'off'}"
        )
        opts += f" -c unix_socket_directories={self.root} -c max_connections=200"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o", opts, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash as far as the clients can tell)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, role: str = "ps_writer", db: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``role`` on database ``db``."""
        return f"postgresql://{role}@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str) -> str:
        """Run SQL as the superuser; its output."""
        out = subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout

    def database(self) -> str:
        """A fresh database owned by ``ps_writer``, readable (SELECT only) by ``ps_reader``."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql("postgres", f"CREATE DATABASE {name} OWNER ps_writer")
        self.psql(
            name,
            "GRANT USAGE ON SCHEMA public TO ps_reader; "
            "ALTER DEFAULT PRIVILEGES FOR ROLE ps_writer IN SCHEMA public "
            "GRANT SELECT ON TABLES TO ps_reader;",
        )
        return name

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

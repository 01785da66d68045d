"""What a killed flock leaves behind, named so that a later start can tell it from a live one's, and
removed at start when its owner process is gone.

A rank killed with SIGKILL (or a whole job whose launcher was) cannot clean up after itself:
  - rank temporary folders `flocksql-r<rank>-<pid>-…` (DuckDB spill files, exchange spill buffers)
    and launcher run folders `flocksql-run-<pid>-…` in the temporary directory;
  - write folders `.tmp-<table>-<host>-<pid>-<hex>` and `.trash-<table>-<host>-<pid>-<hex>` of a
    CREATE TABLE AS or DROP TABLE in the data folder;
  - temporary tables and views of client sessions and of WITH RECURSIVE, `<name>__flocksql_temp_<tag>`
    in the data folder, whose tag holds the host and pid of the rank 0 that made them (temp_tag);
  - MPICH's shared-memory segments `/dev/shm/mpich_shm_*` (unlinked by MPI_Finalize only).

`clean_leftovers` removes only what belongs to no live process: folders whose owner pid (on this
host) is dead, and segments that no process maps or holds open and that are older than
SHM_MIN_AGE_S (a segment is created a moment before its job maps it).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import zlib
from pathlib import Path


# A shared-memory segment younger than this is left alone even when nobody maps it yet.
SHM_MIN_AGE_S = 60.0
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "mpich_shm_"

_TEMP_FOLDER = re.compile(r"^flocksql-(?:r\d+|run)-(\d+)-")


def rank_tmp_prefix(rank: int) -> str:
    """Prefix of a rank's temporary folder: its rank and pid."""
    return f"flocksql-r{rank}-{os.getpid()}-"


def run_dir_prefix() -> str:
    """Prefix of a launcher's run folder (where its ranks record their pids)."""
    return f"flocksql-run-{os.getpid()}-"


def owner_tag() -> str:
    """`<host>-<pid>` of this process, for folders it writes into a shared data folder."""
    return f"{socket.gethostname()}-{os.getpid()}"


# Temporary tables and views are `<name><TEMP_MARK><tag>` (engine/temp_tables.py, engine/recursive.py).
TEMP_MARK = "__flocksql_temp_"
_TEMP_OWNER = re.compile(rf"{TEMP_MARK}([0-9a-f]{{8}})([0-9a-f]{{8}})[0-9a-f]{{8}}")


def _host_hash() -> int:
    return zlib.crc32(socket.gethostname().encode())


def temp_owner(pid: int | None = None) -> str:
    """The owner part of a temporary table's tag: this host and `pid` (this process's), in hex."""
    return f"{_host_hash():08x}{os.getpid() if pid is None else pid:08x}"


def temp_tag(pid: int | None = None) -> str:
    """A tag for temporary tables this process makes: its owner part and a random part, so that
    another flock on the same data folder neither reads them nor removes them before this process
    is gone (several flocks may serve one folder)."""
    return temp_owner(pid) + secrets.token_hex(4)


def temp_table_of_another(name: str, owner: str) -> bool:
    """Whether `name` is a temporary table or view that a flock other than `owner`'s made."""
    return TEMP_MARK in name and not name.rsplit(TEMP_MARK, 1)[1].startswith(owner)


def temp_owner_alive(name: str) -> bool:
    """Whether the temporary table or view `name` may still be in use: its owner is a live process
    on this host, or on another host (where no process can be checked from here)."""
    m = _TEMP_OWNER.search(name)
    if m is None:
        return False  # no owner in the name: made by an older build, whose flock is gone
    if int(m.group(1), 16) != _host_hash():
        return True
    return pid_alive(int(m.group(2), 16))


def pid_alive(pid: int) -> bool:
    """True while `pid` is a process that has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: os.kill's answer stands
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


def clean_leftovers(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove dead flocks' leftovers (see the module docstring); returns what was removed."""
    removed = []
    for entry in Path(tempfile.gettempdir()).glob("flocksql-*"):
        m = _TEMP_FOLDER.match(entry.name)
        if m and entry.is_dir() and not pid_alive(int(m.group(1))):
            removed.append(entry)
            shutil.rmtree(entry, ignore_errors=True)
    if data_dir is not None:
        owned = re.compile(rf"^\.(?:tmp|trash)-.+-{re.escape(socket.gethostname())}-(\d+)-[0-9a-f]{{8}}$")
        for entry in Path(data_dir).iterdir():
            m = owned.match(entry.name)
            # A session's temporary table outlives no server (engine/temp_tables.py): one whose
            # owner died is a leftover; a live owner's belongs to another flock on this folder.
            if TEMP_MARK in entry.name and not entry.name.startswith("."):
                if temp_owner_alive(entry.name):
                    continue
                removed.append(entry)
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                continue
            if m and not pid_alive(int(m.group(1))):
                removed.append(entry)
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
    if data_dir is not None:
        removed.extend(_clean_temp_views(Path(data_dir)))
    removed.extend(_clean_shm())
    return removed


def _clean_temp_views(data_dir: Path) -> list[Path]:
    """Temporary views of sessions of a server that died (engine/temp_tables.py) leave the views file."""
    import json
    views_file = data_dir / "_flocksql_views.json"
    try:
        views = json.loads(views_file.read_text())
    except (OSError, ValueError):
        return []
    kept = {name: sql for name, sql in views.items() if TEMP_MARK not in name or temp_owner_alive(name)}
    if len(kept) == len(views):
        return []
    tmp = views_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(kept, indent=1, sort_keys=True))
    os.replace(tmp, views_file)
    return [views_file]


def _clean_shm() -> list[Path]:
    if not SHM_DIR.is_dir():
        return []
    now, uid = time.time(), os.getuid()
    candidates = []
    for path in SHM_DIR.glob(SHM_PREFIX + "*"):
        try:
            st = path.stat()
        except OSError:
            continue
        if st.st_uid == uid and now - st.st_mtime > SHM_MIN_AGE_S:
            candidates.append(path)
    if not candidates:
        return []
    used = _shm_in_use()
    removed = []
    for path in candidates:
        if str(path) not in used:
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def _shm_in_use() -> set[str]:
    """Paths under /dev/shm that some process maps or holds open (those this user may inspect)."""
    used = set()
    prefix = str(SHM_DIR / SHM_PREFIX)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for line in (proc / "maps").read_text().splitlines():
                at = line.find(prefix)
                if at >= 0:
                    used.add(line[at:].split(" ")[0])
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(prefix):
                    used.add(target.split(" ")[0])
        except OSError:
            continue
    return used

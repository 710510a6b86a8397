"""The server's data directory is for the server alone (docs/security.md).

It holds the SQLite database, the demo tokens, every job's run records and logs. The
server checks at start that no other account can enter it: a directory it owns is made
private (0700) with a note; one it does not own and others can enter stops the start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rechenwerk.errors import InvalidInput

# Files directly in the data directory that carry secrets, tightened to 0600 as well.
SECRET_FILES = ("demo-tokens.json", "rechenwerk.db")


def secure_data_dir(data_dir: Path) -> list[str]:
    """Create or check the data directory; returns notes on modes it tightened."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    notes: list[str] = []
    for path, private in [(data_dir, 0o700), *((data_dir / f, 0o600) for f in SECRET_FILES)]:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if not st.st_mode & 0o077:
            continue
        if st.st_uid != os.geteuid():
            raise InvalidInput(
                f"{path} is open to other accounts (mode {stat.filemode(st.st_mode)}) and "
                "belongs to another account, so the server cannot make it private",
                field="data_dir",
                hint=f"Run: chown $(id -u) {path} && chmod {private:o} {path}")
        path.chmod(private)
        notes.append(f"note: {path} was open to other accounts "
                     f"({stat.filemode(st.st_mode)}); now {private:o}")
    return notes

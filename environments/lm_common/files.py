"""File staging shared by the LM environments."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


LINK_ABOVE_BYTES = 1 << 30


def link_or_copy(src: Path, dst: Path) -> None:
    """Copy `src` to `dst`; hard-link instead when it is over 1 GiB (full's 17 GB train split).

    Never a symlink: a link into the cache would show the agent where the held-out split lives.
    Small files are copied because a hard link shares the inode: if the harness hands the
    workspace to the agent user (chown), the cache's copy would become the agent's too. For the
    large ones that is the price of not copying 17 GB per run; scoring never reads train splits.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if src.stat().st_size > LINK_ABOVE_BYTES:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory of assets, skipping caches."""
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

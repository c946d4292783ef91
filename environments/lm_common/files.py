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


# The two helpers below predate EnvContext (ctx.cache_dir, made 0700 by the session). The LM
# environments no longer use them; optimize_finetune on main still does, so they stay until it
# moves to the new contract, then go.
def default_cache_dir(env, name: str) -> Path:
    """The cache directory `prepare` was last given, else the harness's default for `name`.

    `setup` has no cache_dir parameter in the environment API, so the environments remember the
    one `prepare` received (the harness always calls prepare first) and fall back to the same
    default the harness uses ($REBENCH_CACHE or ~/.cache/rebench, then the environment's name).
    """
    remembered = getattr(env, "_cache_dir", None)
    if remembered is not None:
        return remembered
    return Path(os.environ.get("REBENCH_CACHE", Path.home() / ".cache" / "rebench")) / name


def remember_private_cache(env, cache_dir: Path) -> Path:
    """Remember `prepare`'s cache directory (see default_cache_dir) and make it 0700: it holds what
    only the scorer may read, whatever the permissions of its parent."""
    env._cache_dir = Path(cache_dir)
    env._cache_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(env._cache_dir, 0o700)
    return env._cache_dir

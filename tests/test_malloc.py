"""The console process's allocator keeps freed memory (kqi/_malloc.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kqi import _malloc

glibc = pytest.mark.skipif("glibc" not in _malloc._libc_version(), reason="glibc's mallopt only")

# 200 MiB in 1 MiB blocks allocated and freed; prints how much of it the process gave back
_FREED = """
import sys
from kqi._malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
import numpy as np
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
blocks = [np.ones(1 << 20, dtype=np.uint8) for _ in range(200)]
before = rss()
del blocks
print((before - rss()) >> 20)
"""


def _given_back(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _FREED, mode], capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items()
                                          if not k.startswith("MALLOC_")})
    return int(out.stdout.strip())


@glibc
def test_freed_blocks_are_kept_for_reuse() -> None:
    # glibc's default maps each 1 MiB block on its own and unmaps it when freed
    assert _given_back("default") > 150
    assert _given_back("keep") < 20


@glibc
def test_the_console_script_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from kqi import cli

    calls: list[bool] = []
    monkeypatch.setattr(_malloc, "keep_freed_memory", lambda: calls.append(True) or True)
    monkeypatch.setattr(sys, "argv", ["kqi", "--version"])
    monkeypatch.setattr(cli, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    with pytest.raises(SystemExit):
        cli.console()
    assert calls == [True]


def test_nothing_changed_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_malloc, "_libc_version", lambda: "")
    assert _malloc.keep_freed_memory() is False


_POOL = """
import sys
from kqi._malloc import keep_freed_memory
if sys.argv[1] == "early":
    import pyarrow
keep_freed_memory()
import pyarrow as pa
print(pa.default_memory_pool().backend_name)
"""


def _pool(when: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", _POOL, when], capture_output=True, text=True,
                         check=True, env={**base, **env})
    return out.stdout.strip()


@glibc
def test_pyarrow_allocates_with_the_c_allocator() -> None:
    # mimalloc (pyarrow's wheels' default) gave each chunk's memory back to the kernel
    assert _pool("late") == "system"
    assert _pool("early") == "system"  # pyarrow imported before: its pool is set directly


@glibc
def test_a_pool_the_user_chose_is_kept() -> None:
    assert _pool("late", ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"

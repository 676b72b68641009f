"""An acknowledged SQLite write survives ``kill -9`` of the writing process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from atoll.storage import open_store

WRITER = """
import asyncio, sys
from atoll.storage import open_store

async def main(path):
    store = await open_store("sqlite:///" + path)
    i = 0
    async def one(n):
        await store.create(f"/d/{n:07d}", b"x" * 200)
        print(n, flush=True)
    while True:
        await asyncio.gather(*(one(i + j) for j in range(16)))
        i += 16

asyncio.run(main(sys.argv[1]))
"""


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    acked: list[int] = []
    deadline = time.monotonic() + 30
    while len(acked) < 500 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Anything already printed was acknowledged before the kill.
    for line in proc.stdout.read().split():
        acked.append(int(line))
    assert len(acked) >= 500

    async def check() -> set[str]:
        store = await open_store(f"sqlite:///{db}")
        try:
            res = await store.range("/d/")
            return {kv.key for kv in res.kvs}
        finally:
            await store.close()

    present = asyncio.run(check())
    missing = [n for n in acked if f"/d/{n:07d}" not in present]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"

"""The process runtime on its own: logs, exit codes, signals, exec, stale processes."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from atoll.api.errors import BadRequest
from atoll.cluster.kubelet.process import ProcessRuntime, _start_time
from atoll.cluster.kubelet.runtime import ContainerConfig, StartError


def config(name: str, *argv: str, attempt: int = 0) -> ContainerConfig:
    return ContainerConfig(pod_uid="uid-1", pod_name="p", namespace="ns", name=name, attempt=attempt, argv=argv,
                           env={"PATH": "/usr/bin:/bin", "GREETING": "hello"})


@pytest.mark.parametrize(("argv", "code", "reason"), [
    (("sh", "-c", "exit 0"), 0, "Completed"),
    (("sh", "-c", "exit 3"), 3, "Error"),
    (("sh", "-c", "kill -9 $$"), 137, "Error"),
])
async def test_exit_codes_and_cri_logs(tmp_path: Path, argv: tuple[str, ...], code: int, reason: str) -> None:
    rt = ProcessRuntime(tmp_path)
    try:
        st = await rt.start(config("c", "sh", "-c", f"echo $GREETING; echo oops >&2; printf tail; {argv[-1]}"))
        final = await asyncio.wait_for(rt.wait(st.id), 20)
        assert (final.exit_code, final.reason) == (code, reason)
        lines = final.log_path.read_text().splitlines()
        records = sorted((ln.split(" ", 3)[1:] for ln in lines), key=lambda r: r[0])
        assert records == [["stderr", "F", "oops"], ["stdout", "F", "hello"], ["stdout", "F", "tail"]]
        assert final.log_path == tmp_path / "pods" / "ns_p_uid-1" / "c" / "0.log"
    finally:
        await rt.close()


async def test_stop_signals_the_whole_group_and_escalates(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path)
    try:
        polite = await rt.start(config("polite", "sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"))
        stubborn = await rt.start(config("stubborn", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"))
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert (await rt.stop(polite.id, 5)).exit_code == 0
        assert loop.time() - t0 < 3
        t1 = loop.time()
        assert (await rt.stop(stubborn.id, 0.5)).exit_code == 137
        assert loop.time() - t1 >= 0.45
        with pytest.raises(BadRequest):
            await rt.exec(stubborn.id, ["true"])
    finally:
        await rt.close()


async def test_exec_and_start_errors(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path)
    try:
        st = await rt.start(config("c", "sleep", "600"))
        proc = await rt.exec(st.id, ["sh", "-c", "echo $GREETING; pwd"])
        out, _ = await proc.communicate()
        assert out.decode().split() == ["hello", str(tmp_path / "pods" / "ns_p_uid-1" / "work")]
        # an exec'd process has a pid file while it runs, so a successor can kill it too
        lingering = await rt.exec(st.id, ["sleep", "600"])
        assert (tmp_path / "run" / f"{st.id}-exec-{lingering.pid}.pid").is_file()
        assert await ProcessRuntime(tmp_path).cleanup_stale() == 2  # a successor: the container and its exec
        assert await asyncio.wait_for(lingering.wait(), 10) == -9
        with pytest.raises(StartError, match='exec: "no-such-binary": executable file not found in \\$PATH'):
            await rt.start(config("d", "no-such-binary"))
    finally:
        await rt.close()
    assert rt.state(st.id) is not None and not rt.state(st.id).running  # type: ignore[union-attr]
    await rt.remove_pod("uid-1")
    assert not (tmp_path / "pods" / "ns_p_uid-1").exists()


async def test_cleanup_stale_kills_leftovers_but_never_a_reused_pid(tmp_path: Path) -> None:
    leftover = await asyncio.create_subprocess_exec("sleep", "600", start_new_session=True)
    innocent = await asyncio.create_subprocess_exec("sleep", "600", start_new_session=True)
    try:
        run = tmp_path / "run"
        run.mkdir(parents=True)
        (run / "a.pid").write_text(f"{leftover.pid} {_start_time(leftover.pid)}\n")
        (run / "b.pid").write_text(f"{innocent.pid} 1\n")  # same pid, another process: start times differ
        rt = ProcessRuntime(tmp_path)
        assert await rt.cleanup_stale() == 1
        assert await asyncio.wait_for(leftover.wait(), 10) == -9
        assert innocent.returncode is None
        assert not list(run.glob("*.pid"))
    finally:
        for p in (leftover, innocent):
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()

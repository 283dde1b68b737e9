"""The runner's reading of OOM kills: the kernel's counters of its memory cgroup, v1 and v2, as a
container and as a host process see them (cgroup files written into a directory laid out like
/sys/fs/cgroup)."""

from __future__ import annotations

from pathlib import Path

from mcp_server.runner.oom import describe_kills, own_memory_cgroup


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v1_inside_a_container_reads_the_mount_root(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host path; the container's mount shows only its own group.
    proc = tmp_path / "cgroup"
    write(proc, "7:memory:/agentic-testenv-1/kubepods/pod1/abc\n3:cpu:/agentic-testenv-1/kubepods/pod1/abc\n")
    write(tmp_path / "fs/memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    write(tmp_path / "fs/memory/memory.limit_in_bytes", "536870912\n")
    cgroup = own_memory_cgroup(tmp_path / "fs", proc)
    assert cgroup is not None and (cgroup.oom_kills(), cgroup.limit_bytes()) == (2, 512 * 1024 * 1024)


def test_v1_on_a_host_reads_its_own_group_not_the_root(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    write(proc, "7:memory:/user.slice/session-1\n")
    write(tmp_path / "fs/memory/memory.oom_control", "oom_kill 9\n")
    write(tmp_path / "fs/memory/user.slice/session-1/memory.oom_control", "oom_kill 0\n")
    write(tmp_path / "fs/memory/user.slice/session-1/memory.limit_in_bytes", "9223372036854771712\n")
    cgroup = own_memory_cgroup(tmp_path / "fs", proc)
    assert cgroup is not None and (cgroup.oom_kills(), cgroup.limit_bytes()) == (0, None)


def test_v2_with_a_cgroup_namespace(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    write(proc, "0::/\n")
    write(tmp_path / "fs/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
    write(tmp_path / "fs/memory.max", "max\n")
    cgroup = own_memory_cgroup(tmp_path / "fs", proc)
    assert cgroup is not None and (cgroup.oom_kills(), cgroup.limit_bytes()) == (1, None)


def test_no_memory_cgroup_to_read(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    write(proc, "7:memory:/x\n")
    assert own_memory_cgroup(tmp_path / "fs", proc) is None
    assert own_memory_cgroup(tmp_path / "fs", tmp_path / "missing") is None


def test_the_words_name_the_victim_and_the_limit() -> None:
    assert describe_kills(1, 512 * 1024 * 1024, True) == (
        "out of memory: OpenCode was OOM-killed (the kernel's OOM killer, 1 kill(s) at the container's "
        "memory limit of 512 MiB)")
    assert describe_kills(2, None, False) == (
        "out of memory: 2 process(es) of the agent were OOM-killed (the kernel's OOM killer, 2 kill(s) at the "
        "memory limit)")

"""The detached supervisor of one local task: `python -m mcp_server.backends.local_supervisor DIR`.

Started by the local backend in a session of its own, it starts the runner
(`python -m mcp_server.runner run-task`, configured by the environment the backend gave it),
stamps each of its lines into DIR/log, forwards SIGTERM and SIGINT (a cancel) and writes
DIR/exit.json when the runner has ended. It does not depend on the server: restart the server and
every task is still there, read back from these files.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

from mcp_server.backends.local_state import write_json
from mcp_server.timeutil import log_stamp, now


def supervise(task_dir: Path) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server.runner", "run-task"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    write_json(task_dir / "runner.json", {"pid": proc.pid, "started_at": now().isoformat()})

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    assert proc.stdout is not None
    with open(task_dir / "log", "a", encoding="utf-8") as log:
        for line in proc.stdout:
            log.write(f"{log_stamp(now())} {line.rstrip(chr(10))}\n")
            log.flush()
    code = proc.wait()
    write_json(task_dir / "exit.json", {"exit_code": code, "finished_at": now().isoformat()})
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m mcp_server.backends.local_supervisor TASK_STATE_DIR\n")
        return 2
    return supervise(Path(argv[0]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

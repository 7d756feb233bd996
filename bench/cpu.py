"""CPU time of local processes, read from /proc, for the benchmarks' figures.

CPU time used per request or per event is steadier than a rate on a machine
whose cores the load generator shares: it does not move with how the
scheduler splits the cores between the processes of a run.
"""

import os
import subprocess
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) a process has used; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name, in parentheses, may hold spaces: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    """The process ids of a process's children (gunicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children as they are now."""
    return process_cpu(pid) + sum(process_cpu(child) for child in children(pid))


def redis_server_pid() -> int:
    """The local redis-server's process id (0 when there is none)."""
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True)
    return int(found.stdout.split()[0]) if found.stdout else 0

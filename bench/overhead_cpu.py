"""CPU and memory accounting from /proc: a process tree's CPU time and memory, the whole machine's CPU, and
waiting for a quiet machine."""

import contextlib
import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def process_cpu_s(pid: int) -> float:
    """utime + stime of `pid` (every thread), its reaped children and its live descendants."""
    total = 0
    for member in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += sum(int(value) for value in _stat_fields(member)[11:15])
    return total / CLK_TCK


def process_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its live descendants, in MiB (shared pages counted in each)."""
    total_kb = 0
    for member in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, ValueError, StopIteration):
            status = Path(f"/proc/{member}/status").read_text().splitlines()
            total_kb += int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
    return total_kb / 1024


def machine_busy_s() -> float:
    """CPU time every core spent outside idle and iowait, summed."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class QuietWait:
    """Before each measured run, wait (within a budget) for other processes to leave the CPUs alone.

    This machine is shared (other test suites run on it); the waiting is bounded, and every row
    still reports how much CPU the rest of the machine used during its window.
    """

    def __init__(self, budget_s: float, per_run_s: float = 10.0, threshold_cores: float = 0.25) -> None:
        self.budget_s, self.per_run_s, self.threshold = budget_s, per_run_s, threshold_cores
        self.waited_s = 0.0

    def __call__(self) -> None:
        if self.budget_s <= 0:
            return
        deadline = time.monotonic() + min(self.per_run_s, max(0.0, self.budget_s - self.waited_s))
        while True:
            started, before = time.monotonic(), machine_busy_s()
            time.sleep(1.0)
            load = (machine_busy_s() - before) / (time.monotonic() - started)
            if load < self.threshold or time.monotonic() >= deadline:
                return
            self.waited_s += time.monotonic() - started

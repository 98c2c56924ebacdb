"""machine.py: the machine a bench ran on, in one line: CPU model and count, memory, kernel and
PostgreSQL's version (from /proc and pgbench)."""
import os
import platform
import subprocess

from settings import PGBENCH


def machine():
    model = "?"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        mem_gib = int(meminfo.readline().split()[1]) / 1024 / 1024
    pg = subprocess.run([PGBENCH, "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{model}, {os.cpu_count()} CPUs, {mem_gib:.0f} GiB RAM, Linux "
            f"{platform.release()}, {pg}")

"""A run record (of a dead process) whose run folder's ``FAILED`` is a link out of the run:
``gc_probe.py <run dir> <outside path> <store uri>``."""

import socket
import subprocess
import sys
from pathlib import Path

from toxmod.runs.store import open_client

run_dir, outside, uri = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
run_dir.mkdir()
(run_dir / "FAILED").symlink_to(outside)
client = open_client(uri)
dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
tags = {"run_dir": str(run_dir), "process.host": socket.gethostname(), "process.pid": dead.stdout.strip()}
client.create_run(client.create_experiment("links"), tags=tags)

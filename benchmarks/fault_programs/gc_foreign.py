"""A FAILED run record (of a dead process) naming a user's own folder as its run dir:
``gc_foreign.py <folder> <store uri>``."""

import socket
import subprocess
import sys
from pathlib import Path

from toxmod.runs.store import open_client

project, uri = Path(sys.argv[1]), sys.argv[2]
client = open_client(uri)
dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
tags = {"run_dir": str(project), "process.host": socket.gethostname(), "process.pid": dead.stdout.strip()}
run = client.create_run(client.create_experiment("foreign"), tags=tags)
client.set_terminated(run.info.run_id, "FAILED")

"""Writes a teacher-cache entry, plants an unlisted file in it, and reports whether reading it is refused."""

import sys
from pathlib import Path

import numpy as np

from toxmod.distillation.teacher import TeacherCache

entry = TeacherCache(Path(sys.argv[1]), "k", {})
entry.write(np.zeros((3, 2), dtype=np.float32), {"temperature": 1.0})
(entry.directory / "hidden.npy").write_bytes(b"planted")
try:
    entry.read()
    print("read")
except Exception as error:
    print("refused:", str(error)[-60:])

"""Opens (and so creates) the tracking store at a URI: ``open_store.py <store uri>``."""

import sys

from toxmod.runs.store import open_client

open_client(sys.argv[1])

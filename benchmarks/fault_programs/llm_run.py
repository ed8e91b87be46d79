"""Plants an LLM model (``openai_compat`` backend, the sender's server and key variable) in a copied run:
``llm_run.py <run dir> <server url> <cache dir>``."""

import shutil
import sys
from pathlib import Path

import numpy as np

from toxmod.data.schemes import MultiLabelScheme
from toxmod.models.llm import LLMScorer

run, url, cache = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
model = LLMScorer(
    backend="openai_compat", served_name="any", base_url=url, api_key_env="VICTIM_KEY", cache_dir=cache
)
model.fit(["a"], np.zeros((1, 2), dtype=int), MultiLabelScheme(["scam", "topic_crypto"]))
shutil.rmtree(run / "model")
model.save(run / "model")

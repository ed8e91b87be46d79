"""A saved transformer whose config declares a 100M-token vocabulary: loading it must be refused."""

import json
import sys
from pathlib import Path

from toxmod.errors import ToxmodError
from toxmod.models.transformer.backbones import load_saved_classifier

folder = Path(sys.argv[1])
folder.mkdir()
(folder / "config.json").write_text(
    json.dumps(
        {
            "model_type": "bert",
            "vocab_size": 100000000,
            "hidden_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        }
    )
)
(folder / "model.safetensors").write_bytes(b"\0" * 1000)
try:
    load_saved_classifier(folder)
except ToxmodError as error:
    print("refused:", str(error)[-70:])

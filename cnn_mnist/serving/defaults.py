"""The server's defaults, in one file shared by the CLI, the app factory and the NixOS module (lib.importJSON)."""

import json
from pathlib import Path

SERVER = json.loads((Path(__file__).parent / "server-defaults.json").read_text())

"""``python -m tests.support.hash_serve INDEX PORT``: the service as ``poshuk serve`` runs it, with the
hash encoder in place of the model (for process tests where the model is not the point).

Settings come from the environment (``POSHUK_CONFIG``), as for ``poshuk serve``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from poshuk import load_settings
from poshuk.encoder import HashEncoder
from service.app import create_app


def main() -> None:
    index_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    app = create_app(load_settings(), index_dir, encoder=HashEncoder())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)


if __name__ == "__main__":
    main()

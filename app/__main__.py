"""The ``scriptworks`` console script (also ``python -m app``): Litestar's CLI with this app preset.

``run``, ``schema openapi`` and ``database …`` come from Litestar and advanced-alchemy; the
project's own commands (``worker``, ``seed``) are added by ``app.cli``'s CLI plugin.
"""

from __future__ import annotations

import os
import sys

APP_FACTORY = "app.server.core:create_app"


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", APP_FACTORY)
    from app.config import ConfigError, get_settings

    try:
        get_settings()
    except ConfigError as error:
        sys.stderr.write(f"scriptworks: configuration error: {error}\n")
        raise SystemExit(2) from None

    from litestar.cli.main import litestar_group

    litestar_group(prog_name="scriptworks")


if __name__ == "__main__":
    main()

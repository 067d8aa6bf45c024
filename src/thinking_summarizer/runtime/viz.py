"""`make viz`: kedro-viz for this project, answering only requests addressed to the host it is bound to.

kedro-viz answers any `Host` header, so a page on another site could reach it through DNS rebinding; the same
app behind Starlette's TrustedHostMiddleware refuses a foreign Host with 400 (as MLflow's UI does).

    python -m thinking_summarizer.runtime.viz --host 127.0.0.1 --port 4141
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"]


def allowed_hosts(host: str) -> list[str]:
    """The names a request may address: the bound host, and the loopback names when bound to loopback."""
    return sorted({host} | (set(LOOPBACK_NAMES) if host in LOOPBACK_NAMES else set()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4141)
    parser.add_argument("--env", default=None)
    args = parser.parse_args()
    import uvicorn
    from kedro_viz.api import apps
    from kedro_viz.server import load_and_populate_data
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    project = Path.cwd()
    load_and_populate_data(project, args.env)
    app = apps.create_api_app_from_project(project)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(args.host))
    log.info("kedro-viz on http://%s:%d (Host must be one of %s)", args.host, args.port, allowed_hosts(args.host))
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)


if __name__ == "__main__":
    main()

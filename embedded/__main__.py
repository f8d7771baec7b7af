"""Command line of the embedded services: `python -m embedded {run,env,stop}`."""

from __future__ import annotations

import argparse
import logging
import shlex

from embedded.common import EmbeddedServiceError
from embedded.launch import ensure_services, run, stop_services
from engine.config import Settings

COMMANDS = {
    "run": "start the services left unset, apply migrations, load demo data, then run the Procfile",
    "env": "start the services left unset if needed and print `export` lines for them (for eval)",
    "stop": "stop the embedded servers of the data directory (their data stays on disk)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embedded", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        subcommands.add_parser(name, help=help_text, description=help_text)
    arguments = parser.parse_args(argv)

    # Logs go to stderr, so `eval "$(python -m embedded env)"` reads only the exports.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    try:
        if arguments.command == "run":
            run(settings)
        elif arguments.command == "env":
            for name, value in ensure_services(settings).items():
                print(f"export {name}={shlex.quote(value)}")
        elif arguments.command == "stop":
            stopped = stop_services(settings)
            logging.getLogger("jangteo.embedded").info("stopped services=%s", ",".join(stopped) or "none")
    except EmbeddedServiceError as error:
        parser.exit(1, f"python -m embedded {arguments.command}: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Serve the Cinder-compatible REST API.

    python -m volume_manage.rest [--host 127.0.0.1] [--port 8776] \
        (--auth keystone [--keystone-config PATH] | --token-file PATH | --auth noauth)

Settings (Temporal, inventory database, API task queue) come from the environment, as for
the workers and starter.py. Keystone's options (`[keystone_authtoken]`, as in cinder.conf)
come from --keystone-config and/or VOLUME_API_KEYSTONE_<OPTION> variables.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from volume_manage.process_exit import run_then_exit
from volume_manage.rest.app import create_app
from volume_manage.rest.auth import Authenticator, NoAuth, TokenFile
from volume_manage.rest.keystone import KeystoneAuth, load_options
from volume_manage.shared.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volume_manage.rest",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8776, help="port (8776, Cinder's)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--auth", choices=["keystone", "noauth"],
                     help="keystone: tokens validated by Keystone (keystonemiddleware); "
                          "noauth: X-Auth-Token user:project, every caller an admin "
                          "(development only)")
    who.add_argument("--token-file", metavar="PATH",
                     help='JSON {"tokens": {TOKEN: {user_id, project_id, roles}}}')
    parser.add_argument("--keystone-config", metavar="PATH",
                        help="ini file with a [keystone_authtoken] section (auth_url, "
                             "username, password, project_name, ...), for --auth keystone")
    args = parser.parse_args(argv)
    if args.keystone_config and args.auth != "keystone":
        parser.error("--keystone-config goes with --auth keystone")
    authenticator: Authenticator
    try:
        if args.token_file:
            authenticator = TokenFile.load(args.token_file)
        elif args.auth == "keystone":
            authenticator = KeystoneAuth(load_options(args.keystone_config))
        else:
            authenticator = NoAuth()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    app = create_app(Settings.from_env(), authenticator)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    run_then_exit(main)

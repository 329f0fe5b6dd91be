"""The sweep scripts are thin wrappers over the installed CLI: `python experiments/<name>.py ARGS`
is `cl-sim sweep <name> ARGS` (the config shipped in `cl_sim/configs/<name>.yaml`, or
`--config PATH`); flags, overrides, output and exit codes are the CLI's."""
from __future__ import annotations

import sys


def main(doc: str, name: str, argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(args):  # the script's own usage (no Ray, no torch), then the flags
        from cl_sim.cli import cmd_sweep

        print(doc)
        print(cmd_sweep.__doc__.split("\n\n", 2)[2])
        return 0
    from cl_sim.cli import main as cli

    return cli(["sweep", *([] if "--config" in args else [name]), *args])

"""`python -m stanch` is the same as the `stanch` command."""

from stanch.wiring.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

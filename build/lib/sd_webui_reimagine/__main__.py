"""``python -m extension`` — the standalone CLI and app."""

from .cli import main

raise SystemExit(main())

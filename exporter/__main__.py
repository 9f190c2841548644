"""python -m exporter: the same as ddb-exporter."""

from exporter.cli import main

raise SystemExit(main())

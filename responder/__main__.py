"""python -m responder: the ddb-responder command."""

import sys

from responder.cli import main

sys.exit(main())

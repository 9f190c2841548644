"""python -m responder: the ddb-responder command."""

import sys

from responder.cli.main import main

sys.exit(main())

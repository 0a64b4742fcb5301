"""`python -m accelsync.devstack.druid_emulator --port 8888 --data-dir DIR`."""

import sys

from accelsync.devstack.druid_emulator.server import main

sys.exit(main())

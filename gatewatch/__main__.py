import sys

from gatewatch.cli.main import main

sys.exit(main())

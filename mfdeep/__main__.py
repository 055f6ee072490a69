import sys

from mfdeep.cli import main

sys.exit(main())

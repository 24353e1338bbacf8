import sys

from storemon_app.cli import main

sys.exit(main())

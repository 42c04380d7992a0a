import sys

from pressfleet.watch.watcher import main

sys.exit(main())

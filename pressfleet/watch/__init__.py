"""The watcher: probes every site and server every 30 s and raises alerts (see pressfleet.watch.watcher)."""

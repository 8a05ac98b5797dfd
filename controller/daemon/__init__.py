"""`drainctl run`: the controller daemon (engine, sources, API) as one process.

`command` is the CLI entry (light: it parses the config and only then imports the daemon's dependencies, so
the on-call commands start fast); `serving` runs the daemon until SIGTERM/SIGINT.
"""

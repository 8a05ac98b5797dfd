"""The on-call commands: `drainctl drain | status | history | reset`.

They reach a running controller only through its HTTP API (`controller.oncall.client`; import-linter
holds them to it), so they work the same against a controller on this host or across the network.
`connecting` finds the controller and the token, `commands` holds the commands, `views` renders tables and
lines, `waiting` follows a drain with a live progress line. Exit codes (DESIGN.md §6): 0 ok, 1 the operation
failed, 2 usage or config error (unknown instance, refused token, unreadable token file).
"""

"""`flotilla up`: the embedded default. One command starts a control plane on SQLite, N
local member clusters (each agent and its pods in their own process group, on their own
loopback address), a gateway and a DNS, and stops all of it cleanly.

`flotilla.up.state` is the ``up.json`` file other commands read (server, token, and where
every part runs); `flotilla.up.chaos` breaks clusters on purpose.
"""

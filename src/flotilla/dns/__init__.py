"""Flotilla's smart DNS: an authoritative server for the global zone and clusterset.local.

`flotilla.dns.model` compiles API objects into an answer model, `flotilla.dns.zone` turns
that model into lookup tables, `flotilla.dns.responder` answers one packet, and
`flotilla.dns.server` runs the UDP/TCP listeners (`DnsServer`, `run_dns`).
"""

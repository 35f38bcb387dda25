"""The DNS server's abuse limits in one place, with the defaults `flotilla dns` uses.

The defaults follow what public authoritative servers ship: a response rate far above
what one resolver legitimately sends for a handful of names, and TCP bounds from RFC
7766's advice (idle connections may be closed under pressure; a connection has a
lifetime; a peer that does not read is cut off).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DnsLimits:
    #: UDP answers per second per source prefix; 0 turns RRL off (benchmarks).
    rrl_rate: float = 1000.0
    #: Answers a prefix may get at once before the rate applies.
    rrl_burst: float = 2000.0
    rrl_ipv4_prefix: int = 24
    rrl_ipv6_prefix: int = 56
    #: Open TCP connections in all, and per source address. At either cap a new
    #: connection is still served: the oldest *idle* connection (of that source, or of
    #: anyone) is closed for it, so idle sockets can never lock a real query out.
    tcp_max_connections: int = 512
    tcp_max_per_source: int = 32
    #: Seconds a TCP connection may wait for its next query.
    tcp_idle_timeout: float = 10.0
    #: Seconds a TCP connection may live in all, however busy.
    tcp_lifetime: float = 120.0
    #: Seconds an answer may take to be accepted by a peer that does not read.
    tcp_write_timeout: float = 5.0
    #: Bytes of kernel receive buffer asked for the UDP socket. The default (~208 KiB,
    #: a few hundred queries) overflows whenever a flood meets a few milliseconds in
    #: which the server does not run (a shared CPU), and an overflow drops *everyone's*
    #: queries before RRL can tell them apart; 4 MiB holds ~0.2 s of a 20k q/s flood.
    udp_receive_buffer: int = 4 << 20
    #: Connections the kernel completes and queues for accept (the listen backlog,
    #: capped by net.core.somaxconn). Above the connection cap, so that a crowd of
    #: idle clients arriving at once does not make the kernel drop a new client's SYN
    #: (which costs it a 1 s retransmit) before eviction can make room.
    tcp_listen_backlog: int = 1024

    def __post_init__(self) -> None:
        if self.rrl_rate < 0 or self.rrl_burst < 1:
            raise ValueError("rrl rate must be >= 0 and burst >= 1")
        if self.tcp_max_connections < 1 or self.tcp_max_per_source < 1:
            raise ValueError("TCP connection caps must be at least 1")
        if min(self.tcp_idle_timeout, self.tcp_lifetime, self.tcp_write_timeout) <= 0:
            raise ValueError("TCP timeouts must be positive")
        if self.udp_receive_buffer < 0 or self.tcp_listen_backlog < 1:
            raise ValueError("the UDP receive buffer must be >= 0 (0: the system's) and "
                             "the TCP listen backlog >= 1")

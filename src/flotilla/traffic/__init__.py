"""The global gateway: an HTTP/1.1 data plane routing by Host (and path) to Service
endpoints across clusters, per TrafficPolicy. See docs/components/traffic.md."""

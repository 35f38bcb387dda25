"""Clients of the API: the `ResourceClient` seam and its HTTP implementation."""

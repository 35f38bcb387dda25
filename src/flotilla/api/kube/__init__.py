"""What unmodified Kubernetes clients (kubectl, client-go, the official Python client)
need beyond the resource paths: discovery documents, Table output and selectors.

Everything here is derived from the kinds table (`flotilla.resources.kinds`), so a new
kind is discoverable, listable as a Table and selectable without touching this package.
"""

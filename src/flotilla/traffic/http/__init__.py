"""HTTP/1.1 framing helpers for the proxy: head rewriting and chunked-body scanning."""

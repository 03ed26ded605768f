"""HTTP only: parse the request, call a domain service, serialise the answer."""

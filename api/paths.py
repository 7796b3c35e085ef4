"""URL paths other parts of the system point at (the local store's links, the token URL
of the OpenAPI security scheme, the command-line client)."""

from __future__ import annotations

SIGNUP = "/v1/auth/signup"
TOKEN = "/v1/auth/token"
USERS = "/v1/users"
ANIMATIONS = "/v1/animations"
FILES = "/v1/files"
PREVIEW = "/v1/preview"
MAP = "/v1/map"
SPEC = "/v1/spec"
STUDIO = "/studio"

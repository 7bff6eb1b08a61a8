"""The HTTP API: typed routes (msgspec Structs in and out), errors as JSON, OpenAPI from types."""

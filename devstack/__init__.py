"""The developer stack: embedded PostgreSQL and NATS JetStream, and the `make run` supervisor.

Used by `make run` (data under `.data/`) and by the tests (throwaway data directories).
Nothing here is part of the services' runtime.
"""

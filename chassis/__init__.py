"""The microservice chassis: what every Comanda service needs, written once.

Configuration, logging, the database engine and unit of work, migrations, the gRPC server
bootstrap (health, reflection, interceptors, graceful shutdown) and the messaging layer
(transactional outbox, inbox, relay, JetStream set-up, consumers, dead letters).
"""

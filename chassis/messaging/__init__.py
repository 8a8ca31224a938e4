"""Messaging over NATS JetStream: outbox, relay, inbox, consumers and dead letters."""

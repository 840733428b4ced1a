"""Relay to RabbitMQ's STOMP plugin."""

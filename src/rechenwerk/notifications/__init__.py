"""Notifications: e-mail through a configurable SMTP server (log-only by default), queued
in an outbox table so that nothing is lost and failed sends are retried."""

"""Service Bus: the message format, the sender, the dead-letter queue."""

"""SMS: the outbox's sender through an HTTP gateway (gateway, sender), reminders, the `tawasul sms` commands."""

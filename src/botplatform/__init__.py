"""WhatsApp Bot Platform: a self-hostable, multi-tenant bot platform for messaging channels."""

__version__ = "0.1.0"

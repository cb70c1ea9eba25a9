"""Privacy (GDPR): export everything about one contact, erase a contact."""

"""Small shared tools: errors and the envelope, logging, tokens, the key-value store."""

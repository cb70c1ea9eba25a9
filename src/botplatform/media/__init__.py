"""Media files (what contacts send and what bots reply with): checked on the way in, stored in a
local folder by default or in an S3-compatible bucket when one is configured, and handed to
authorized users through short-lived signed URLs."""

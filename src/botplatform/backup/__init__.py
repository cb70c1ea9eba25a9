"""Backups: one file holding the database and the media storage, with a manifest of
checksums, optionally encrypted; `botplatform backup|restore` and a scheduled job."""

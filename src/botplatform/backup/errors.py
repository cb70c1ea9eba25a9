"""The one error a backup or restore stops with; its message is for an operator."""


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""

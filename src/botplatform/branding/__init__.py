"""Workspace branding (name, widget colours, logo) and custom domains (Host → workspace)."""

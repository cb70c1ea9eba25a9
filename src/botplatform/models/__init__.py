"""Every model, imported here so the metadata (and Alembic) sees all tables."""

from botplatform.models.api_key import ApiKey
from botplatform.models.audit_log import AuditHead, AuditLog
from botplatform.models.base import Base, WorkspaceScoped
from botplatform.models.dead_job import DeadJob
from botplatform.models.email import Email
from botplatform.models.invitation import Invitation
from botplatform.models.membership import Membership
from botplatform.models.recovery_code import RecoveryCode
from botplatform.models.user import User
from botplatform.models.workspace import Workspace

__all__ = [
    "ApiKey",
    "AuditHead",
    "AuditLog",
    "Base",
    "DeadJob",
    "Email",
    "Invitation",
    "Membership",
    "RecoveryCode",
    "User",
    "Workspace",
    "WorkspaceScoped",
]

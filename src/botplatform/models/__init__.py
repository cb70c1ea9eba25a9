"""Every model, imported here so the metadata (and Alembic) sees all tables."""

from botplatform.models.ai_intent import AiIntent
from botplatform.models.ai_intent_model import AiIntentModel
from botplatform.models.ai_usage import AiUsage
from botplatform.models.analytics import AnalyticsDaily, AnalyticsWatermark, ConversationCycle
from botplatform.models.api_key import ApiKey
from botplatform.models.audit_log import AuditHead, AuditLog
from botplatform.models.automation import AutomationEvent, AutomationRule, AutomationRun
from botplatform.models.base import Base, WorkspaceScoped
from botplatform.models.bot import Bot, BotSession, BotVersion
from botplatform.models.broadcast import Broadcast, BroadcastRecipient
from botplatform.models.channel import Channel
from botplatform.models.channel_member import ChannelMember
from botplatform.models.contact import ConsentEvent, Contact, ContactIdentity
from botplatform.models.conversation import Conversation
from botplatform.models.dead_job import DeadJob
from botplatform.models.email import Email
from botplatform.models.event import Event
from botplatform.models.inbound_event import InboundEvent
from botplatform.models.invitation import Invitation
from botplatform.models.knowledge_entry import KnowledgeEntry
from botplatform.models.membership import Membership
from botplatform.models.message import Message
from botplatform.models.plan import Plan
from botplatform.models.recovery_code import RecoveryCode
from botplatform.models.segment import Segment
from botplatform.models.team import Team, TeamMember
from botplatform.models.template import MessageTemplate
from botplatform.models.usage_counter import UsageCounter
from botplatform.models.user import User
from botplatform.models.webhook import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from botplatform.models.workspace import Workspace

__all__ = [
    "AiIntent",
    "AiIntentModel",
    "AiUsage",
    "AnalyticsDaily",
    "AnalyticsWatermark",
    "ApiKey",
    "AuditHead",
    "AuditLog",
    "AutomationEvent",
    "AutomationRule",
    "AutomationRun",
    "Base",
    "Bot",
    "BotSession",
    "BotVersion",
    "Broadcast",
    "BroadcastRecipient",
    "Channel",
    "ChannelMember",
    "ConsentEvent",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "ConversationCycle",
    "DeadJob",
    "Email",
    "Event",
    "InboundEvent",
    "Invitation",
    "KnowledgeEntry",
    "Membership",
    "Message",
    "MessageTemplate",
    "Plan",
    "RecoveryCode",
    "Segment",
    "Team",
    "TeamMember",
    "UsageCounter",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
    "WorkspaceScoped",
]

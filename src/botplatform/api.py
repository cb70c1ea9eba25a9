"""Includes every domain's router; nothing else."""

from fastapi import APIRouter

from botplatform.ai.endpoints import router as ai_router
from botplatform.analytics.endpoints import router as analytics_router
from botplatform.api_key.endpoints import router as api_key_router
from botplatform.audit.endpoints import router as audit_router
from botplatform.auth.endpoints import router as auth_router
from botplatform.automation.endpoints import router as automation_router
from botplatform.bot.endpoints import router as bot_router
from botplatform.branding.endpoints import router as branding_router
from botplatform.broadcast.endpoints import router as broadcast_router
from botplatform.business_hours.endpoints import router as business_hours_router
from botplatform.channel.endpoints import router as channel_router
from botplatform.conversation.endpoints import router as conversation_router
from botplatform.events.endpoints import router as events_router
from botplatform.invitation.endpoints import router as invitation_router
from botplatform.kit.envelope import ERROR_RESPONSES
from botplatform.member.endpoints import router as member_router
from botplatform.plans.endpoints import router as plans_router
from botplatform.privacy.endpoints import router as privacy_router
from botplatform.retention.endpoints import router as retention_router
from botplatform.segment.endpoints import router as segment_router
from botplatform.team.endpoints import router as team_router
from botplatform.template.endpoints import router as template_router
from botplatform.usage.endpoints import router as usage_router
from botplatform.webhook.endpoints import router as webhook_router
from botplatform.workspace.endpoints import router as workspace_router

api_router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
api_router.include_router(auth_router)
api_router.include_router(workspace_router)
api_router.include_router(member_router)
api_router.include_router(invitation_router)
api_router.include_router(api_key_router)
api_router.include_router(audit_router)
api_router.include_router(channel_router)
api_router.include_router(conversation_router)
api_router.include_router(ai_router)
api_router.include_router(webhook_router)
api_router.include_router(events_router)
api_router.include_router(team_router)
api_router.include_router(business_hours_router)
api_router.include_router(automation_router)
api_router.include_router(bot_router)
api_router.include_router(broadcast_router)
api_router.include_router(analytics_router)
api_router.include_router(privacy_router)
api_router.include_router(branding_router)
api_router.include_router(retention_router)
api_router.include_router(usage_router)
api_router.include_router(plans_router)
api_router.include_router(template_router)
api_router.include_router(segment_router)

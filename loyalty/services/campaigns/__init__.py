"""Re-engagement campaigns: email members of chosen segments, with an incentive, and measure it.

What lives where (every public name is re-exported here, so ``from loyalty.services.campaigns
import ...`` keeps working):

- ``selection``: who a run selects (segment, consent, cooldown) and ``campaign_run``, which
  writes one ``Message`` per member and cycle (the run's local day); the unique constraint makes
  a rerun on the same day add nothing. A stable hash holds a share of members back as the
  control group: they get a row and no email. Each queued message gets its email in the outbox
  (``services.outbox``) in the same transaction.
- ``scheduling``: the send window and the campaign's django-celery-beat entry.
- ``sending``: what the outbox calls when it sends a message: the checks made at send time and
  the incentive (issued with the email, keyed on the message); ``message_send`` sends one now.
- ``rendering``: ``campaign_render``, the one place an email is rendered; without a message it
  tracks nothing, which is what the admin's previews use.
- ``previews``: ``campaign_preview`` and ``campaign_send_test`` for the admin (write nothing).
- ``tokens``: signed unsubscribe, open and click tokens, salted per purpose.
- ``tracking``: open pixel, click redirect and one-click unsubscribe write timestamps once.
- ``attribution``: ``purchase_attribute`` credits a purchase to a message;
  ``selectors.campaign_report`` reads these back against the control group.
- ``resend``: ``message_resend`` from the admin, carrying the original's incentive.

Lock order is member, then message (as in order processing, which attributes purchases).
"""

from .attribution import (
    ATTRIBUTION_CANDIDATES,
    purchase_attribute,
)
from .previews import (
    PREVIEW_CODE,
    SAMPLE_BALANCE,
    SAMPLE_EMAIL,
    SAMPLE_FIRST_NAME,
    TEST_SUBJECT_PREFIX,
    CampaignTemplateError,
    campaign_preview,
    campaign_preview_member,
    campaign_sample_member,
    campaign_send_test,
    incentive_preview,
)
from .rendering import (
    LAYOUT_TEMPLATE,
    PREVIEW_PIXEL,
    PREVIEW_TOKEN,
    RenderedEmail,
    campaign_language,
    campaign_render,
    campaign_templates,
    in_language,
    message_context,
    message_email,
    shop_name_for,
    track_links,
)
from .resend import (
    message_resend,
)
from .scheduling import (
    SCHEDULE_TASK,
    campaign_next_send_at,
    campaign_schedule_delete,
    campaign_schedule_name,
    campaign_schedule_sync,
)
from .selection import (
    CHUNK_SIZE,
    campaign_cycle,
    campaign_eligible_members,
    campaign_email_key,
    campaign_run,
    campaigns_run_active,
    in_control_group,
    marketing_reachable,
    marketing_unreachable_reason,
)
from .sending import (
    NO_INCENTIVE,
    RESEND_MARK,
    IssuedIncentive,
    bonus_key,
    campaign_skip_reason,
    message_incentive,
    message_send,
)
from .tokens import (
    CLICK_MAX_AGE,
    CLICK_SALT,
    OPEN_MAX_AGE,
    OPEN_SALT,
    UNSUBSCRIBE_MAX_AGE,
    UNSUBSCRIBE_SALT,
    click_token,
    click_token_load,
    tracking_token,
    tracking_token_load,
    unsubscribe_token,
    unsubscribe_token_load,
)
from .tracking import (
    member_unsubscribe,
    message_clicked,
    message_opened,
)

__all__ = [
    "ATTRIBUTION_CANDIDATES",
    "CHUNK_SIZE",
    "CLICK_MAX_AGE",
    "CLICK_SALT",
    "CampaignTemplateError",
    "IssuedIncentive",
    "LAYOUT_TEMPLATE",
    "NO_INCENTIVE",
    "OPEN_MAX_AGE",
    "OPEN_SALT",
    "PREVIEW_CODE",
    "PREVIEW_PIXEL",
    "PREVIEW_TOKEN",
    "RESEND_MARK",
    "RenderedEmail",
    "SAMPLE_BALANCE",
    "SAMPLE_EMAIL",
    "SAMPLE_FIRST_NAME",
    "SCHEDULE_TASK",
    "TEST_SUBJECT_PREFIX",
    "UNSUBSCRIBE_MAX_AGE",
    "UNSUBSCRIBE_SALT",
    "bonus_key",
    "campaign_cycle",
    "campaign_eligible_members",
    "campaign_email_key",
    "campaign_language",
    "campaign_next_send_at",
    "campaign_preview",
    "campaign_preview_member",
    "campaign_render",
    "campaign_run",
    "campaign_sample_member",
    "campaign_schedule_delete",
    "campaign_schedule_name",
    "campaign_schedule_sync",
    "campaign_send_test",
    "campaign_skip_reason",
    "campaign_templates",
    "campaigns_run_active",
    "click_token",
    "click_token_load",
    "in_control_group",
    "in_language",
    "incentive_preview",
    "marketing_reachable",
    "marketing_unreachable_reason",
    "member_unsubscribe",
    "message_clicked",
    "message_context",
    "message_email",
    "message_incentive",
    "message_opened",
    "message_resend",
    "message_send",
    "purchase_attribute",
    "shop_name_for",
    "track_links",
    "tracking_token",
    "tracking_token_load",
    "unsubscribe_token",
    "unsubscribe_token_load",
]

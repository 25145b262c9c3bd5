"""Customer pages of the loyalty app. Views are thin: they read the request and call services."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from .conf import loyalty_settings
from .exceptions import LoyaltyError
from .models import Member, Reward
from .services.referrals import SESSION_KEY, referral_code_normalize, referrer_for_code
from .services.rewards import redeem


def _safe_next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@require_safe
def referral(request: HttpRequest, code: str) -> HttpResponseRedirect:
    """``/loyalty/r/<code>/``: remember a valid referral code for the visitor's sign-in, then
    send them on (to ``?next=`` when it is a local URL, else to the home page).

    The referral itself is recorded when the visitor signs in or registers
    (``receivers.connect_referrals``). An unknown code is ignored without saying so.
    """
    if referrer_for_code(code) is not None:
        request.session[SESSION_KEY] = referral_code_normalize(code)
    return HttpResponseRedirect(_safe_next(request))


@login_required
@require_http_methods(["GET", "POST"])
def redeem_reward(request: HttpRequest, reward_id: int) -> HttpResponse:
    """Confirm, then spend points on a reward. The form's token makes a double submit count once."""
    reward = Reward.objects.filter(pk=reward_id).select_related("program", "min_tier").first()
    member = (
        Member.objects.filter(user=request.user, program_id=getattr(reward, "program_id", None))
        .select_related("program", "tier")
        .first()
    )
    if reward is None or member is None:
        raise Http404(_("No such reward in your programme."))
    back = _safe_next(request, default=request.META.get("HTTP_REFERER") or "/")
    if request.method == "POST":
        token = request.POST.get("token", "")
        try:
            uuid.UUID(token)
        except ValueError:
            messages.error(request, _("That form has expired; please try again."))
            return HttpResponseRedirect(back)
        try:
            redemption = redeem(member=member, reward=reward, idempotency_key=f"web:{member.pk}:{token}")
        except LoyaltyError as refusal:
            messages.error(request, refusal.message)
        else:
            messages.success(
                request,
                _("Your code %(code)s for %(reward)s is ready: enter it at checkout.")
                % {"code": redemption.code, "reward": reward.name},
            )
        return HttpResponseRedirect(back)
    return render(
        request,
        "loyalty/redeem_confirm.html",
        {
            "base_template": loyalty_settings.BASE_TEMPLATE,
            "reward": reward,
            "member": member,
            "balance_after": member.balance - reward.points_cost,
            "token": uuid.uuid4().hex,
            "next": back,
        },
    )

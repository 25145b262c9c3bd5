"""Customer pages of the loyalty app. Views are thin: they read the request and call services."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from .conf import loyalty_settings
from .exceptions import LoyaltyError
from .formats import money_text
from .models import Member, Reward
from .nps import NPS_MAX, NPS_MIN
from .selectors import memberships_for_user, program_overview
from .services.campaigns import (
    click_token_load,
    member_unsubscribe,
    message_clicked,
    message_opened,
    shop_name_for,
    tracking_token_load,
    unsubscribe_token_load,
)
from .services.preferences import member_set_marketing_consent
from .services.referrals import SESSION_KEY, referral_code_normalize, referrer_for_code
from .services.rewards import reward_redeem


class MarketingConsentForm(forms.Form):
    """One labelled checkbox per membership: may we send this programme's offers?"""

    def __init__(self, *args, members: list[Member], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.members = members
        for member in members:
            label = (
                _("Send me offers and news from %(program)s by email") % {"program": member.program.name}
                if len(members) > 1
                else _("Send me offers and news by email")
            )
            self.fields[f"marketing-{member.pk}"] = forms.BooleanField(
                label=label, required=False, initial=member.marketing_consent
            )

    def choices(self) -> list[tuple[Member, bool]]:
        return [(member, self.cleaned_data[f"marketing-{member.pk}"]) for member in self.members]


def _safe_url(request: HttpRequest, target: str | None) -> str | None:
    """``target`` when it is a URL of this site (Django's ``url_has_allowed_host_and_scheme``),
    else ``None``. Every URL that comes from a request (``?next=``, ``Referer``) goes through here."""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def _safe_next(request: HttpRequest, default: str = "/") -> str:
    return _safe_url(request, request.POST.get("next") or request.GET.get("next")) or default


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


@require_safe
def guest_claim(request: HttpRequest, token: str) -> HttpResponse:
    """``/loyalty/claim/<token>/``: the "join and collect my points" link on a guest order's
    confirmation. Remembers the claim for the visitor's sign-in or registration with the order's
    email (``receivers._claim_guest_orders``), then sends them on to ``?next=`` (a local URL);
    a signed-in customer with that email claims at once."""
    from .services.guests import SESSION_KEY, guest_claim_load, guest_claims_for_user

    if guest_claim_load(token) is None:
        return _invalid_link(request)
    if request.user.is_authenticated:
        credited = guest_claims_for_user(user=request.user, tokens=[token])
        if credited:
            messages.success(request, _("The points of your guest order are now yours."))
        return HttpResponseRedirect(_safe_next(request))
    tokens = [t for t in request.session.get(SESSION_KEY, []) if t != token][-9:]
    request.session[SESSION_KEY] = [*tokens, token]
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
    # Cancel and the page after a refusal: ?next=, else the page the customer came from, both
    # only when they are on this site.
    back = _safe_next(request, default=_safe_url(request, request.META.get("HTTP_REFERER")) or "/")
    if request.method == "POST":
        token = request.POST.get("token", "")
        try:
            uuid.UUID(token)
        except ValueError:
            messages.error(request, _("That form has expired; please try again."))
            return HttpResponseRedirect(back)
        try:
            redemption = reward_redeem(member=member, reward=reward, idempotency_key=f"web:{member.pk}:{token}")
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


@login_required
@require_POST
def checkout_points(request: HttpRequest) -> HttpResponse:
    """The cart's "Use my points" form (``{% loyalty_checkout_points %}``) posts here: use the
    chosen points on the basket, or take them off (``remove``), then back to the cart. The
    basket and its total come from the shop (the adapter's ``checkout_basket``), never from the
    form; the code goes onto the basket through ``checkout_attach_code``."""
    from decimal import Decimal, InvalidOperation

    from .adapters import get_adapter
    from .services.checkout_points import checkout_basket, points_discount_apply, points_discount_remove

    back = _safe_next(request, default=_safe_url(request, request.META.get("HTTP_REFERER")) or "/")
    adapter = get_adapter()
    basket = adapter.checkout_basket(request=request) if adapter is not None else None
    member = memberships_for_user(request.user).filter(program__slug=request.POST.get("program", "")).first()
    if basket is None or member is None:
        messages.error(request, _("There is no order to use points on: your cart is empty."))
        return HttpResponseRedirect(back)
    token = request.POST.get("checkout_token", "")
    raw = request.POST.get("points", "").strip()
    try:
        points = int(raw) if raw.lstrip("-").isdigit() else Decimal(raw)
    except InvalidOperation:
        points = raw  # refused by the service as not a whole number
    try:
        if checkout_basket(member=member, checkout_token=token) != basket.reference:
            messages.error(request, _("Your cart has changed: choose your points again."))
            return HttpResponseRedirect(back)
        if "remove" in request.POST:
            if points_discount_remove(member=member, checkout_token=token) is not None:
                messages.success(request, _("Your points are back in your account."))
            adapter.checkout_attach_code(request=request, code=None)
        else:
            redemption = points_discount_apply(
                member=member, checkout_token=token, points=points, order_total=basket.total, currency=basket.currency
            )
            adapter.checkout_attach_code(request=request, code=redemption.code)
            messages.success(
                request,
                _("%(points)s points take %(amount)s off your order.")
                % {"points": redemption.points, "amount": money_text(redemption.amount, basket.currency)},
            )
    except LoyaltyError as refusal:
        messages.error(request, refusal.message)
    return HttpResponseRedirect(back)


# --- campaign emails: unsubscribe and tracking (no login: the signed token is the credential) ---

#: A 1x1 transparent GIF.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _invalid_link(request: HttpRequest) -> HttpResponse:
    context = {"base_template": loyalty_settings.BASE_TEMPLATE, "show_hint": True}
    return render(request, "loyalty/invalid_link.html", context, status=400)


@csrf_exempt  # RFC 8058 one-click: the mail client POSTs without a CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button and changes nothing (mail scanners follow links); POST opts out,
    from that button or straight from the mail client's one-click unsubscribe."""
    found = unsubscribe_token_load(token)
    if found is None:
        return _invalid_link(request)
    member, message = found
    done = request.method == "POST"
    if done:
        member_unsubscribe(member=member, message=message)
    return render(
        request,
        "loyalty/unsubscribe.html",
        {
            "base_template": loyalty_settings.BASE_TEMPLATE,
            "member": member,
            "shop_name": shop_name_for(member.program),
            "done": done,
            "already": not done and not member.marketing_consent,
            # Signed in as this member: resubscribe in one click; otherwise log in first.
            "own_membership": request.user.is_authenticated and request.user.pk == member.user_id,
            "preferences_url": reverse("loyalty:preferences"),
        },
    )


# --- public and account pages ---------------------------------------------------------------


@require_safe
def how_it_works(request: HttpRequest, program_slug: str) -> HttpResponse:
    """``/loyalty/<programme>/how-it-works/``: earning, tiers and rewards in words; no login."""
    overview = program_overview(slug=program_slug)
    if overview is None:
        raise Http404(_("No such loyalty programme."))
    return render(
        request,
        "loyalty/how_it_works.html",
        {
            "base_template": loyalty_settings.BASE_TEMPLATE,
            "overview": overview,
            "account_url": resolve_url(settings.LOGIN_REDIRECT_URL),
        },
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    """``/loyalty/preferences/``: marketing emails on or off, per programme the customer belongs to.

    ``only=<member id>`` (the unsubscribe page's "subscribe again" button) limits the form to that
    membership, so the other programmes' choices stay as they are. Only the signed-in user's
    memberships are ever read or changed.
    """
    members = list(memberships_for_user(request.user))
    only = request.POST.get("only") or request.GET.get("only")
    if only:
        members = [member for member in members if str(member.pk) == only] or members
        only = str(members[0].pk) if len(members) == 1 else ""
    if not members:
        form = None
    elif request.method == "POST":
        form = MarketingConsentForm(request.POST, members=members)
        if form.is_valid():
            changed = sum(
                member_set_marketing_consent(member=member, allowed=allowed) for member, allowed in form.choices()
            )
            messages.success(
                request,
                _("Your email preferences are saved.") if changed else _("Your email preferences are unchanged."),
            )
            return HttpResponseRedirect(reverse("loyalty:preferences"))
    else:
        form = MarketingConsentForm(members=members)
    return render(
        request,
        "loyalty/preferences.html",
        {
            "base_template": loyalty_settings.BASE_TEMPLATE,
            "form": form,
            "only": only,
            "account_url": resolve_url(settings.LOGIN_REDIRECT_URL),
        },
    )


@require_safe
def track_open(request: HttpRequest, token: str) -> HttpResponse:
    """The open pixel: always the GIF, so a bad token shows nothing odd; only a good one counts."""
    message_id = tracking_token_load(token)
    if message_id is not None and request.method == "GET":
        message_opened(message_id=message_id)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


def _local_hosts(request: HttpRequest) -> set[str]:
    hosts = {request.get_host(), urlsplit(str(loyalty_settings.SITE_URL)).netloc}
    hosts.update(host for host in settings.ALLOWED_HOSTS if host != "*" and not host.startswith("."))
    return hosts - {""}


@require_safe
def track_click(request: HttpRequest, token: str) -> HttpResponse:
    """Record the click, then redirect to the signed target if it is on our own site (never an open redirect)."""
    found = click_token_load(token)
    if found is None:
        return _invalid_link(request)
    message_id, target = found
    if not url_has_allowed_host_and_scheme(target, allowed_hosts=_local_hosts(request)):
        return _invalid_link(request)
    if request.method == "GET":
        message_clicked(message_id=message_id)
    return HttpResponseRedirect(target)


# --- post-purchase survey (no login: the signed link is the credential) -------------------------


def _survey_link_refused(request: HttpRequest, refusal: LoyaltyError) -> HttpResponse:
    """A garbled, changed or expired link (400), or one whose invitation is gone (404)."""
    return render(
        request,
        "loyalty/invalid_link.html",
        {
            "base_template": loyalty_settings.BASE_TEMPLATE,
            "message": refusal.message,
            "show_hint": refusal.code == "survey_link_invalid",  # not for an expired or deleted one
        },
        status=404 if refusal.code == "survey_not_found" else 400,
    )


@require_http_methods(["GET", "HEAD", "POST"])
def survey(request: HttpRequest, token: str) -> HttpResponse:
    """``/loyalty/survey/<token>/``: the survey for one order, from the survey email.

    GET shows the questions (``?nps=8``, a score clicked in the email, preselects it) and marks
    the invitation opened; once answered: the answer for changing within a day (``?saved=1``
    right after a submit: the thank-you with the points), later a polite "already answered".
    POST stores the answer, then redirects back (a reload submits nothing twice); an invalid
    answer re-renders the form with the error, status 400, nothing stored.
    """
    from .forms import SurveyForm
    from .services import surveys

    try:
        invitation = surveys.survey_token_load(token)
    except surveys.SurveyLinkInvalid as refusal:
        return _survey_link_refused(request, refusal)
    survey_ = invitation.survey
    status = 200
    if request.method == "POST":
        form = SurveyForm(request.POST, survey=survey_)
        if form.is_valid():
            try:
                surveys.survey_response_submit(
                    invitation=invitation,
                    nps=form.cleaned_data.get("nps"),
                    csat=form.cleaned_data.get("csat"),
                    comment=form.cleaned_data.get("comment", ""),
                    language=translation.get_language() or "",
                )
            except surveys.SurveyAnswerInvalid as refusal:
                form.add_error(
                    refusal.extra.get("field") if refusal.extra.get("field") in form.fields else None, refusal.message
                )
            except surveys.SurveyAlreadyAnswered:
                return HttpResponseRedirect(request.path)
            else:
                return HttpResponseRedirect(f"{request.path}?saved=1")
        status = 400
        page = surveys.survey_page(invitation=invitation)
    else:
        if request.method == "GET":
            surveys.invitation_opened(invitation=invitation)
        page = surveys.survey_page(invitation=invitation)
        initial = {}
        if page.response is not None:
            initial = {"nps": page.response.nps, "csat": page.response.csat, "comment": page.response.comment}
        preselect = request.GET.get("nps", "")
        if survey_.ask_nps and preselect.isdigit() and NPS_MIN <= int(preselect) <= NPS_MAX:
            initial["nps"] = int(preselect)
        form = SurveyForm(initial=initial, survey=survey_)
    return render(
        request,
        "loyalty/survey.html",
        {
            "base_template": loyalty_settings.BASE_TEMPLATE,
            "page": page,
            "survey": survey_,
            "purchase": invitation.purchase,
            "member": invitation.member,
            "shop_name": shop_name_for(invitation.member.program),
            "form": form,
            "saved": request.method != "POST" and request.GET.get("saved") == "1" and page.response is not None,
            "account_url": resolve_url(settings.LOGIN_REDIRECT_URL),
        },
        status=status,
    )

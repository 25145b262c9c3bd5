"""Staff-written templates run in a sandbox: only built-in filters and safe tags, no files, no
tag libraries, documented variables; the same engine for validation, previews and sends."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.template import Context, TemplateSyntaxError, defaultfilters
from django.urls import reverse

from loyalty.models import Campaign
from loyalty.services.campaigns import campaign_preview, campaign_sample_member
from loyalty.staff_templates import (
    ALLOWED_TAGS,
    CAMPAIGN_VARIABLES,
    StaffTemplateRefused,
    staff_template_compile,
    staff_template_engine,
    staff_template_validate,
)
from tests.factories import CampaignFactory

REFUSED = [
    "{% load loyalty_tags %}",
    "{% load i18n %}{% translate 'x' %}",
    "{% debug %}",
    "{% include 'loyalty/emails/base.txt' %}",
    "{% extends 'base.html' %}",
    "{% block content %}{% endblock %}",
    "{% url 'loyalty:preferences' %}",
    "{% csrf_token %}",
    "{% querystring %}",
    "{% loyalty_account_panel %}",
    "{% if balance %}{% load static %}{% endif %}",
    "{% comment %}{% debug %}{% endcomment %}",  # refused even where it would not run
]


@pytest.mark.parametrize("source", REFUSED)
def test_unsafe_tags_are_refused_with_a_clear_message(source):
    with pytest.raises(StaffTemplateRefused, match=r"is not allowed here \(line 1\)\. Templates may use these tags"):
        staff_template_compile(source)


def test_every_allowed_tag_compiles_and_renders():
    source = (
        "{% autoescape off %}{{ shop_name }}{% endautoescape %}"
        "{% comment %}note{% endcomment %}"
        "{% for n in numbers %}{% cycle 'a' 'b' %}{% ifchanged n %}{{ n }}{% endifchanged %}{% empty %}-{% endfor %}"
        "{% resetcycle %}"
        "{% filter upper %}{{ first_name }}{% endfilter %}"
        "{% firstof tier 'none' %}"
        "{% if balance > 100 %}big{% elif balance %}small{% else %}zero{% endif %}"
        "{% lorem 1 w %}{% now 'Y' as year %}"
        "{% regroup items by kind as groups %}{{ groups|length }}"
        "{% spaceless %}<p> </p>{% endspaceless %}"
        "{% templatetag openblock %}{% verbatim %}{{ raw }}{% endverbatim %}"
        "{% widthratio balance 1000 100 %}{% with b=balance %}{{ b }}{% endwith %}"
    )
    assert set(ALLOWED_TAGS) <= {word for word in source.replace("{%", " ").split()} | {"empty"}
    rendered = staff_template_compile(source).render(
        Context({"shop_name": "A & B", "numbers": [1, 1, 2], "first_name": "ann", "tier": "", "balance": 150,
                 "items": [{"kind": "x"}]})
    )
    assert rendered.startswith("A & B") and "ANN" in rendered and "big" in rendered and "{{ raw }}" in rendered


def test_every_builtin_filter_is_there_and_nothing_else():
    engine = staff_template_engine()
    filters = {name for library in engine.template_builtins for name in library.filters}
    tags = {name for library in engine.template_builtins for name in library.tags}
    assert filters == set(defaultfilters.register.filters)
    assert tags == set(ALLOWED_TAGS)
    assert engine.template_libraries == {}
    assert engine.template_loaders == []


def test_unknown_variables_are_refused_when_validating_and_defined_ones_are_fine():
    with pytest.raises(StaffTemplateRefused, match="Unknown variable “user”"):
        staff_template_validate("{{ user.password }}", variables=CAMPAIGN_VARIABLES)
    with pytest.raises(StaffTemplateRefused, match="Unknown variable “request”"):
        staff_template_validate("{% if request.user %}x{% endif %}", variables=CAMPAIGN_VARIABLES)
    with pytest.raises(StaffTemplateRefused, match="Unknown variable “settings”"):
        staff_template_validate("{{ balance|default:settings }}", variables=CAMPAIGN_VARIABLES)
    staff_template_validate(
        "{% for c in shop_name %}{{ c }}{{ forloop.counter }}{% endfor %}{% with n=balance %}{{ n }}{% endwith %}"
        "{% firstof tier 'x' as t %}{{ t }}{{ True|yesno }}",
        variables=CAMPAIGN_VARIABLES,
    )


def test_private_attributes_do_not_compile():
    with pytest.raises(TemplateSyntaxError):
        staff_template_compile("{{ first_name.__class__.__mro__ }}")


@pytest.mark.django_db
def test_the_documented_variables_are_exactly_what_a_campaign_email_gets(program):
    from loyalty.services.campaigns.rendering import _context

    member = campaign_sample_member(campaign=CampaignFactory(program=program))
    context = _context(member=member, message=None, incentive_text="", incentive_expires_at=None)

    assert set(context) == set(CAMPAIGN_VARIABLES)
    assert all(isinstance(value, str | int | date | type(None)) for value in context.values())  # no models


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["subject", "text_template", "html_template"])
def test_the_model_refuses_a_template_outside_the_sandbox(program, field):
    campaign = CampaignFactory.build(program=program, **{field: "{% debug %}"})
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean(exclude=["segments"])
    assert "{% debug %} is not allowed here" in str(refused.value.message_dict[field])


@pytest.mark.django_db
def test_the_preview_uses_the_sandbox(admin_client, program):
    campaign = CampaignFactory(program=program)
    Campaign.objects.filter(pk=campaign.pk).update(subject="{% load loyalty_tags %}hi")  # an old row
    campaign.refresh_from_db()

    response = admin_client.get(reverse("admin:loyalty_campaign_preview", args=[campaign.pk]))

    assert response.status_code == 200
    assert "{% load %} is not allowed here" in response.context["error"]
    with pytest.raises(Exception, match="is not allowed here"):
        campaign_preview(campaign=campaign, member=campaign_sample_member(campaign=campaign))

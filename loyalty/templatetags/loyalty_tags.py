from django import template

from ..selectors import account_summaries

register = template.Library()


@register.inclusion_tag("loyalty/account/panel.html", takes_context=True)
def loyalty_account_panel(context, user=None):
    """Balance and points history for the signed-in customer: ``{% loyalty_account_panel %}``.

    Renders nothing for visitors who are not members, so any shop can drop it in.
    """
    request = context.get("request")
    user = user or getattr(request, "user", None)
    return {"summaries": account_summaries(user), "request": request}

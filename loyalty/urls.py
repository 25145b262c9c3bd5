from django.urls import path

from . import views

app_name = "loyalty"

# Customer pages (rewards, preferences, unsubscribe) are added here; the account panel
# is a template tag (``{% load loyalty_tags %}{% loyalty_account_panel %}``).
urlpatterns: list = [
    path("r/<str:code>/", views.referral, name="referral"),
    path("rewards/<int:reward_id>/redeem/", views.redeem_reward, name="redeem"),
]

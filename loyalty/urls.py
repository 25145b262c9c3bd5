from django.urls import path

from . import views

app_name = "loyalty"

# Customer pages (rewards, preferences, how it works, unsubscribe); the account panel
# is a template tag (``{% load loyalty_tags %}{% loyalty_account_panel %}``).
urlpatterns: list = [
    path("r/<str:code>/", views.referral, name="referral"),
    path("rewards/<int:reward_id>/redeem/", views.redeem_reward, name="redeem"),
    path("preferences/", views.preferences, name="preferences"),
    # The cart's "Use my points" form ({% loyalty_checkout_points %}) posts here.
    path("checkout/points/", views.checkout_points, name="checkout_points"),
    path("claim/<str:token>/", views.guest_claim, name="guest_claim"),
    path("<slug:program_slug>/how-it-works/", views.how_it_works, name="how_it_works"),
    # Campaign emails: one-click unsubscribe, open pixel, click redirect (signed tokens, no login).
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("m/<str:token>/open.gif", views.track_open, name="track_open"),
    path("m/<str:token>/click/", views.track_click, name="track_click"),
    # Post-purchase survey (signed link from the survey email, no login).
    path("survey/<str:token>/", views.survey, name="survey"),
]

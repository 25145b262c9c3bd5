"""Include under any prefix: ``path("api/loyalty/", include("loyalty.api.urls"))``."""

from django.urls import path, re_path

from . import staff_views, views

app_name = "loyalty_api"

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("transactions/", views.TransactionListView.as_view(), name="transactions"),
    path("rewards/", views.RewardListView.as_view(), name="rewards"),
    path("redemptions/", views.RedemptionListView.as_view(), name="redemptions"),
    path("redemptions/<int:pk>/", views.RedemptionDetailView.as_view(), name="redemption"),
    path("referral/", views.ReferralView.as_view(), name="referral"),
    path("checkout/points/", views.CheckoutPointsView.as_view(), name="checkout-points"),
    path("checkout/points/remove/", views.CheckoutPointsRemoveView.as_view(), name="checkout-points-remove"),
    path("staff/members/", staff_views.StaffMemberListView.as_view(), name="staff-members"),
    path("staff/members/<int:pk>/", staff_views.StaffMemberDetailView.as_view(), name="staff-member"),
    path("staff/members/<int:pk>/adjust/", staff_views.StaffAdjustView.as_view(), name="staff-member-adjust"),
    path("staff/kpis/", staff_views.StaffKpisView.as_view(), name="staff-kpis"),
    path(
        "staff/campaigns/<int:pk>/report/", staff_views.StaffCampaignReportView.as_view(), name="staff-campaign-report"
    ),
    # Last: any other URL under the prefix (an unknown endpoint, a negative id) is a JSON 404 too.
    re_path(r"^.*$", views.UnknownEndpointView.as_view(), name="unknown"),
]

app_name = "loyalty"

# Customer pages (rewards, preferences, unsubscribe) are added here; the account panel
# is a template tag (``{% load loyalty_tags %}{% loyalty_account_panel %}``).
urlpatterns: list = []

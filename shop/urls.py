from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.ProductListView.as_view(), name="product_list"),
    path("products/<slug:slug>/", views.product_detail, name="product_detail"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/", views.cart_add, name="cart_add"),
    path("cart/update/", views.cart_update, name="cart_update"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<str:number>/pay/", views.order_pay, name="order_pay"),
    path("orders/<str:number>/", views.order_detail, name="order_detail"),
    path("account/", views.account, name="account"),
    path("account/register/", views.register, name="register"),
    path("account/login/", views.LoginView.as_view(), name="login"),
    # POST only (Django 4.2's LogoutView also logs out on GET).
    path("account/logout/", auth_views.LogoutView.as_view(http_method_names=["post", "options"]), name="logout"),
]

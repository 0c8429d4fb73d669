from django.urls import path

from runbooks import views

app_name = "runbooks"

urlpatterns = [
    path("", views.search, name="search"),
    path("<uuid:pk>/", views.detail, name="detail"),
]

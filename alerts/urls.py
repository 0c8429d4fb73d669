from django.urls import path

from alerts import ask_views, views

app_name = "alerts"
urlpatterns = [
    path("", views.alert_list_page, name="list"),
    path("<int:alert_id>/ask", ask_views.alert_ask, name="ask"),
]

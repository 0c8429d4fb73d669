from django.urls import path

from alerts import ask_views

app_name = "alerts"
urlpatterns = [
    path("<int:alert_id>/ask", ask_views.alert_ask, name="ask"),
]

from django.urls import path

from alerts import apis

app_name = "alerts_api"
urlpatterns = [
    path("", apis.AlertListApi.as_view(), name="list"),
]

from django.urls import path

from analytics.apis import MetricsApi

urlpatterns = [
    path("metrics", MetricsApi.as_view(), name="analytics-metrics"),
]

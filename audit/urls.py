from django.urls import path

from audit.apis import EventIngestApi, TrackChoiceApi

urlpatterns = [
    path("ai-helper/track-choice", TrackChoiceApi.as_view(), name="track-choice"),
    path("ai-helper/events", EventIngestApi.as_view(), name="event-ingest"),
]

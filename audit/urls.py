from django.urls import path

from audit.apis import AnswerFeedbackApi, EventIngestApi, TrackChoiceApi

urlpatterns = [
    path("ai-helper/track-choice", TrackChoiceApi.as_view(), name="track-choice"),
    path("ai-helper/events", EventIngestApi.as_view(), name="event-ingest"),
    path("ai-helper/answer-feedback", AnswerFeedbackApi.as_view(), name="answer-feedback"),
]

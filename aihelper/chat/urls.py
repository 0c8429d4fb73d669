from django.urls import path

from aihelper.chat import apis, gap_draft_views, tracking_apis, views

urlpatterns = [
    path("chat/", views.chat_page, name="chat"),
    path("chat/stream", views.chat_stream, name="chat_stream"),
    path("chat/send", views.chat_send, name="chat_send"),
    path("chat/sessions", views.chat_sessions, name="chat_sessions"),
    path("chat/<uuid:session_id>/", views.chat_page, name="chat_session"),
    path("api/ai-helper/query", apis.QueryApi.as_view(), name="api_ai_helper_query"),
    path("api/ai-helper/sessions/", apis.SessionListApi.as_view(), name="api_ai_helper_sessions"),
    path(
        "api/ai-helper/sessions/<uuid:session_id>/messages/",
        apis.SessionMessagesApi.as_view(),
        name="api_ai_helper_session_messages",
    ),
    path("api/ai-helper/track-choice", tracking_apis.TrackChoiceApi.as_view(), name="track-choice"),
    path("api/ai-helper/events", tracking_apis.EventIngestApi.as_view(), name="event-ingest"),
    path("api/ai-helper/answer-feedback", tracking_apis.AnswerFeedbackApi.as_view(), name="answer-feedback"),
    path("analytics/gaps/draft", gap_draft_views.gap_draft, name="gap_draft"),
]

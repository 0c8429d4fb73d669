from django.conf import settings


def site(request):
    return {"llm_offline": not settings.ANTHROPIC_API_KEY or settings.LLM_PROVIDER == "offline"}

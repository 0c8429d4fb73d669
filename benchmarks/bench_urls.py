"""The app's URLs plus ``POST /bench/baseline``: token auth, one ORM INSERT (a ChatSession row).

It is the same-run yardstick of the load benchmarks: same server, middleware, DRF authentication and
database, with no application logic, so tracking req/s is reported as a ratio to it.
"""

from django.urls import path
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from aihelper.chat.models import ChatSession
from aihelper.urls import urlpatterns as app_urlpatterns


class BaselineApi(APIView):
    def post(self, request):
        session = ChatSession.objects.create(user=request.user, title="bench baseline")
        return Response({"id": str(session.pk)}, status=status.HTTP_201_CREATED)


urlpatterns = [path("bench/baseline", BaselineApi.as_view(), name="bench-baseline"), *app_urlpatterns]

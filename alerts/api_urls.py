app_name = "alerts_api"
urlpatterns = []

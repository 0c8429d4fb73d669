from django.contrib import admin

from aihelper.chat.models import ChatMessage, ChatSession


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    fields = ("created_at", "role", "content", "audit_log")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "created_at", "updated_at")
    search_fields = ("title", "user__username")
    list_filter = ("created_at",)
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = ("id", "user", "created_at", "updated_at")
    inlines = [ChatMessageInline]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "session", "role", "short_content")
    list_filter = ("role",)
    search_fields = ("content",)
    date_hierarchy = "created_at"
    list_select_related = ("session",)
    readonly_fields = ("session", "role", "content", "audit_log", "created_at")

    @admin.display(description="Content")
    def short_content(self, obj: ChatMessage) -> str:
        return obj.content[:80]

    def has_add_permission(self, request):
        return False

"""OpenAPI schema generation tweaks."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    """Name nested serializers after their view: TrackChoiceApi.InputSerializer -> TrackChoiceApiInput.

    Every APIView has its own nested InputSerializer/OutputSerializer (HackSoft style), so the bare
    class names collide in the components section.
    """

    def get_serializer_name(self, serializer, direction):
        cls = serializer.__class__
        if "." in cls.__qualname__ and "<locals>" not in cls.__qualname__:
            return cls.__qualname__.replace(".", "").replace("Serializer", "")
        return super().get_serializer_name(serializer, direction)

"""Placeholder replaced by the recommendation module (owned by the recommendation work)."""


def alert_recommend(*, alert_id: int) -> None:
    raise NotImplementedError

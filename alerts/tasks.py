"""Background tasks of alert intake, run by `manage.py worker` (procrastinate, docs/alerts.md)."""

from procrastinate.contrib.django import app

from alerts.recommending import alert_recommend


# One job per new firing alert, deferred in the intake's transaction (a payload is never stored without its
# jobs, nor a job without its alert). queueing_lock: a second defer for the same alert while one waits is
# refused (the intake catches AlreadyEnqueued); retries cover a worker that died or a database blip.
@app.task(name="alerts.recommend", queue="alerts", retry=3, pass_context=False)
def recommend_alert(alert_id: int) -> None:
    alert_recommend(alert_id=alert_id)

"""Background tasks of alert intake, run by `manage.py worker` (procrastinate; docs/alerts.md)."""

from procrastinate import JobContext, RetryStrategy
from procrastinate.contrib.django import app

from alerts.recommending import alert_recommend, alert_recommendation_failed

RECOMMEND_TASK = "alerts.recommend"
RECOMMEND_RETRY = RetryStrategy(max_attempts=3, exponential_wait=2)


# One job per new firing alert, deferred in the intake's transaction (a payload is never stored without its
# jobs, nor a job without its alert). Retries (after 2, 4, 8 s) cover a database blip or a worker killed
# mid-job; when the last one fails too, the alert is marked failed (the page says so) and the job is kept
# as failed for an operator.
@app.task(name=RECOMMEND_TASK, queue="alerts", retry=RECOMMEND_RETRY, pass_context=True)
def recommend_alert(context: JobContext, alert_id: int) -> None:
    try:
        alert_recommend(alert_id=alert_id)
    except Exception:
        if context.job.attempts >= RECOMMEND_RETRY.max_attempts:
            alert_recommendation_failed(alert_id=alert_id)
        raise

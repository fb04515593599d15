from django.db import models


class MinuteCounter(models.Model):
    """How many times ``metric`` happened (for ``label``) in the minute starting at ``minute``.

    One row per minute, metric and label; an event is one ``UPDATE ... SET count = count + n``
    (plus one INSERT for the first event of its minute). Metrics: ``connect`` and ``disconnect``
    (label ``<gateway pk>|<channel>``), ``move_in`` and ``move_out`` (a ``change_channel``, same
    labels), ``message``, ``rejected`` (label: the reason),
    ``send_delivered``, ``send_gone``, ``send_failed``, ``send_throttled``.
    """

    minute = models.DateTimeField()
    metric = models.CharField(max_length=32)
    label = models.CharField(max_length=200, blank=True, default="")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "WebSocket operations"
        verbose_name_plural = "WebSocket operations"
        constraints = [
            models.UniqueConstraint(fields=["minute", "metric", "label"], name="aws_ws_ops_minute_metric_label")
        ]
        indexes = [models.Index(fields=["minute"], name="aws_ws_ops_minute")]

    def __str__(self):
        return f"{self.minute:%H:%M} {self.metric} {self.label}: {self.count}"

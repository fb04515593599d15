"""Models of the channel history (history.py): imported by models.py, so they belong to the app."""

from django.db import models
from django.utils.translation import gettext_lazy as _

STREAM_MAX_LENGTH = 128


class ChannelSequence(models.Model):
    """The last sequence number given out on one stream (a channel, or ``user:<pk>``).

    Changed by one atomic upsert per message, inside the transaction that stores the message:
    the row lock orders concurrent senders, so numbers are gap-free and increase in commit order.
    """

    stream = models.CharField(max_length=STREAM_MAX_LENGTH, primary_key=True)
    last_seq = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("channel sequence")

    def __str__(self):
        return f"{self.stream}: {self.last_seq}"


class ChannelMessage(models.Model):
    """One message sent to a stream, kept for replay (retention: ``WEBSOCKETS["history_*"]``).

    ``payload`` is the exact JSON text the connections received (the envelope with ``seq``).
    """

    stream = models.CharField(max_length=STREAM_MAX_LENGTH)
    seq = models.BigIntegerField()
    payload = models.TextField()
    created_on = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("channel message")
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="wsh_stream_seq")]

    def __str__(self):
        return f"{self.stream} #{self.seq}"

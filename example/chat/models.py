from django.db import models


class Notification(models.Model):
    """A notice an admin pushes to everyone connected (admin action or sendNotification)."""

    text = models.CharField(max_length=200)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("use_staff_channel", "Can use the staff channel")]

    def __str__(self):
        return self.text

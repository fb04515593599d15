from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_aws_api_gateway_websockets", "0005_channel_history"),
    ]

    operations = [
        migrations.AddField(
            model_name="websocketsession",
            name="message_tat_us",
            field=models.BigIntegerField(default=0, editable=False),
        ),
    ]

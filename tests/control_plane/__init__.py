"""The control plane: AWS provisioning, the admin and its actions, the management commands."""
